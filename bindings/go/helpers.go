package brisk

import (
	"fmt"
	"strconv"
)

// Typed views of a reply, in redigo's style: v, err := brisk.String(c.Do("GET", "k")). They
// pass an error through, return ErrNil for a nil reply, and an *Error (INVALID_ARGUMENT) when
// the reply has another type.

func wrongType(want string, v any) error {
	return newError(StatusInvalidArgument, fmt.Sprintf("brisk: reply %T is not %s", v, want))
}

// String is a string reply (an integer or double is formatted).
func String(v any, err error) (string, error) {
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case nil:
		return "", ErrNil
	}
	return "", wrongType("a string", v)
}

// Int64 is an integer reply (a string holding an integer is parsed).
func Int64(v any, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		n, perr := strconv.ParseInt(x, 10, 64)
		if perr != nil {
			return 0, wrongType("an integer", v)
		}
		return n, nil
	case nil:
		return 0, ErrNil
	}
	return 0, wrongType("an integer", v)
}

// Float64 is a double reply (a string or integer is converted).
func Float64(v any, err error) (float64, error) {
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case string:
		f, perr := strconv.ParseFloat(x, 64)
		if perr != nil {
			return 0, wrongType("a number", v)
		}
		return f, nil
	case nil:
		return 0, ErrNil
	}
	return 0, wrongType("a number", v)
}

// Bool is a boolean reply (integers: non-zero is true).
func Bool(v any, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	case nil:
		return false, ErrNil
	}
	return false, wrongType("a boolean", v)
}

// Strings is an array of strings (nil elements become "").
func Strings(v any, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		if v == nil {
			return nil, ErrNil
		}
		return nil, wrongType("an array", v)
	}
	out := make([]string, len(list))
	for i, e := range list {
		if e == nil {
			continue
		}
		s, serr := String(e, nil)
		if serr != nil {
			return nil, serr
		}
		out[i] = s
	}
	return out, nil
}

// StringMap is a map of strings: a RESP3 map, or a RESP2 flat array of keys and values.
func StringMap(v any, err error) (map[string]string, error) {
	if err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]string, len(x))
		for k, e := range x {
			s, serr := String(e, nil)
			if serr != nil {
				return nil, serr
			}
			out[k] = s
		}
		return out, nil
	case []any:
		if len(x)%2 != 0 {
			return nil, wrongType("a map", v)
		}
		out := make(map[string]string, len(x)/2)
		for i := 0; i < len(x); i += 2 {
			k, kerr := String(x[i], nil)
			s, serr := String(x[i+1], nil)
			if kerr != nil || serr != nil {
				return nil, wrongType("a map of strings", v)
			}
			out[k] = s
		}
		return out, nil
	case nil:
		return nil, ErrNil
	}
	return nil, wrongType("a map", v)
}
