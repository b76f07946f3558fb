package brisk

// #include "bg.h"
import "C"

import (
	"encoding"
	"fmt"
	"strconv"
	"sync"
	"unsafe"
)

// args packs a command's arguments into one buffer and their lengths: Go memory without Go
// pointers, which C may read during the call (bg.c builds argv from it).
type args struct {
	buf  []byte
	lens []C.size_t
}

var argsPool = sync.Pool{New: func() any {
	return &args{buf: make([]byte, 0, 256), lens: make([]C.size_t, 0, 8)}
}}

func packArgs(values []any) (*args, error) {
	if len(values) == 0 {
		return nil, newError(StatusInvalidArgument, "brisk: a command needs at least its name")
	}
	a := argsPool.Get().(*args)
	a.buf, a.lens = a.buf[:0], a.lens[:0]
	for _, v := range values {
		start := len(a.buf)
		switch x := v.(type) {
		case string:
			a.buf = append(a.buf, x...)
		case []byte:
			a.buf = append(a.buf, x...)
		case int:
			a.buf = strconv.AppendInt(a.buf, int64(x), 10)
		case int64:
			a.buf = strconv.AppendInt(a.buf, x, 10)
		case int32:
			a.buf = strconv.AppendInt(a.buf, int64(x), 10)
		case int16:
			a.buf = strconv.AppendInt(a.buf, int64(x), 10)
		case int8:
			a.buf = strconv.AppendInt(a.buf, int64(x), 10)
		case uint:
			a.buf = strconv.AppendUint(a.buf, uint64(x), 10)
		case uint64:
			a.buf = strconv.AppendUint(a.buf, x, 10)
		case uint32:
			a.buf = strconv.AppendUint(a.buf, uint64(x), 10)
		case uint16:
			a.buf = strconv.AppendUint(a.buf, uint64(x), 10)
		case uint8:
			a.buf = strconv.AppendUint(a.buf, uint64(x), 10)
		case float64:
			a.buf = strconv.AppendFloat(a.buf, x, 'f', -1, 64)
		case float32:
			a.buf = strconv.AppendFloat(a.buf, float64(x), 'f', -1, 32)
		case bool:
			if x {
				a.buf = append(a.buf, '1')
			} else {
				a.buf = append(a.buf, '0')
			}
		case encoding.BinaryMarshaler:
			b, err := x.MarshalBinary()
			if err != nil {
				a.release()
				return nil, err
			}
			a.buf = append(a.buf, b...)
		default:
			a.release()
			return nil, newError(StatusInvalidArgument,
				fmt.Sprintf("brisk: cannot send an argument of type %T (use string, []byte, "+
					"a number, bool or an encoding.BinaryMarshaler)", v))
		}
		a.lens = append(a.lens, C.size_t(len(a.buf)-start))
	}
	a.buf = append(a.buf, 0) // never empty: &buf[0] is always valid
	return a, nil
}

func (a *args) ptr() *C.char       { return (*C.char)(unsafe.Pointer(&a.buf[0])) }
func (a *args) lensPtr() *C.size_t { return &a.lens[0] }
func (a *args) count() C.size_t    { return C.size_t(len(a.lens)) }

func (a *args) release() {
	if cap(a.buf) <= 64<<10 { // keep big one-off buffers out of the pool
		argsPool.Put(a)
	}
}
