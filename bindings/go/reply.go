package brisk

// #include "bg.h"
import "C"

import (
	"fmt"
	"math/big"
	"unsafe"
)

// Replies become Go values:
//
//	bulk and simple strings, verbatim text  string
//	integers                                int64
//	doubles                                 float64
//	booleans                                bool
//	big numbers                             *big.Int
//	nil                                     nil
//	arrays, sets, pushes                    []any
//	maps                                    map[string]any (keys that are not strings are
//	                                        formatted with fmt.Sprint)
//	an error element inside an aggregate    *Error (a pipeline's failed command, say)

// chunk is how many elements one brisk_reply_elements call reads.
const chunk = 256

func replyValue(r *C.brisk_reply) any {
	var it C.brisk_reply_item
	C.bg_describe(r, &it)
	return itemValue(&it)
}

func text(it *C.brisk_reply_item) string {
	if it.len == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(it.str)), int(it.len)))
}

func itemValue(it *C.brisk_reply_item) any {
	switch it.kind {
	case C.BRISK_REPLY_NIL:
		return nil
	case C.BRISK_REPLY_STRING, C.BRISK_REPLY_STATUS, C.BRISK_REPLY_VERBATIM:
		return text(it)
	case C.BRISK_REPLY_ERROR:
		return errorElement(text(it))
	case C.BRISK_REPLY_INTEGER:
		return int64(it.integer)
	case C.BRISK_REPLY_DOUBLE:
		return float64(it.number)
	case C.BRISK_REPLY_BOOL:
		return it.integer != 0
	case C.BRISK_REPLY_BIGNUM:
		n, ok := new(big.Int).SetString(text(it), 10)
		if !ok {
			return text(it)
		}
		return n
	case C.BRISK_REPLY_MAP:
		return mapValue(it.reply, int(it.len))
	case C.BRISK_REPLY_ARRAY, C.BRISK_REPLY_SET, C.BRISK_REPLY_PUSH:
		return listValue(it.reply, int(it.len))
	default:
		return newError(StatusInternal, fmt.Sprintf("brisk: unknown reply type %d", it.kind))
	}
}

// eachElement calls fn for every element of an aggregate, reading them in chunks.
func eachElement(r *C.brisk_reply, n int, fn func(i int, it *C.brisk_reply_item)) {
	size := n
	if size > chunk {
		size = chunk
	}
	if size == 0 {
		return
	}
	items := make([]C.brisk_reply_item, size)
	for done := 0; done < n; {
		got := int(C.brisk_reply_elements(r, C.size_t(done), &items[0], C.size_t(size)))
		if got == 0 {
			return
		}
		for i := 0; i < got; i++ {
			fn(done+i, &items[i])
		}
		done += got
	}
}

func listValue(r *C.brisk_reply, n int) []any {
	out := make([]any, n)
	eachElement(r, n, func(i int, it *C.brisk_reply_item) { out[i] = itemValue(it) })
	return out
}

func mapValue(r *C.brisk_reply, n int) map[string]any {
	out := make(map[string]any, n/2)
	var key string
	eachElement(r, n, func(i int, it *C.brisk_reply_item) {
		if i%2 == 0 {
			k := itemValue(it)
			if s, ok := k.(string); ok {
				key = s
			} else {
				key = fmt.Sprint(k)
			}
			return
		}
		out[key] = itemValue(it)
	})
	return out
}
