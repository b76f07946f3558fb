package brisk

// #cgo pkg-config: brisk
// #include "bg.h"
import "C"

import (
	"strings"
	"unsafe"
)

// Status is the outcome of a call (brisk_status).
type Status uint32

// The statuses of the C API.
const (
	StatusOK              Status = C.BRISK_OK
	StatusInvalidArgument Status = C.BRISK_ERR_INVALID_ARGUMENT
	StatusConnection      Status = C.BRISK_ERR_CONNECTION
	StatusTimeout         Status = C.BRISK_ERR_TIMEOUT
	StatusAuth            Status = C.BRISK_ERR_AUTH
	StatusServer          Status = C.BRISK_ERR_SERVER
	StatusBusyLoading     Status = C.BRISK_ERR_BUSY_LOADING
	StatusClusterDown     Status = C.BRISK_ERR_CLUSTER_DOWN
	StatusReadOnly        Status = C.BRISK_ERR_READONLY
	StatusWatch           Status = C.BRISK_ERR_WATCH
	StatusPoolExhausted   Status = C.BRISK_ERR_POOL_EXHAUSTED
	StatusProtocol        Status = C.BRISK_ERR_PROTOCOL
	StatusTLS             Status = C.BRISK_ERR_TLS
	StatusSentinel        Status = C.BRISK_ERR_SENTINEL
	StatusClosed          Status = C.BRISK_ERR_CLOSED
	StatusInternal        Status = C.BRISK_ERR_INTERNAL
)

// String is the C constant's name, e.g. "BRISK_ERR_TIMEOUT".
func (s Status) String() string { return C.GoString(C.brisk_status_name(C.brisk_status(s))) }

// Category is the family of the status.
func (s Status) Category() Category {
	return Category(C.brisk_status_category(C.brisk_status(s)))
}

// Retryable says whether brisk's default retry policy retries this status.
func (s Status) Retryable() bool { return bool(C.brisk_status_is_retryable(C.brisk_status(s))) }

// Category is a family of errors, as the production guides of redis-py, go-redis and Jedis
// group them.
type Category uint32

// The categories of the C API.
const (
	CategoryNone          Category = C.BRISK_CATEGORY_NONE
	CategoryConnection    Category = C.BRISK_CATEGORY_CONNECTION
	CategoryAccessControl Category = C.BRISK_CATEGORY_ACCESS_CONTROL
	CategoryData          Category = C.BRISK_CATEGORY_DATA
	CategoryGeneric       Category = C.BRISK_CATEGORY_GENERIC
)

func (c Category) String() string {
	switch c {
	case CategoryNone:
		return "none"
	case CategoryConnection:
		return "connection"
	case CategoryAccessControl:
		return "access control"
	case CategoryData:
		return "data"
	default:
		return "generic"
	}
}

// Error is every error brisk returns: the status of the failed call, its category and the
// message brisk captured for it (the server's own text for errors the server sent). Match it
// with errors.Is against ErrTimeout, ErrServer, ... (same status), or errors.As.
type Error struct {
	Status   Status
	Category Category
	Message  string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "brisk: " + e.Status.String()
	}
	return e.Message
}

// Is makes errors.Is(err, brisk.ErrTimeout) true for any error of that status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Status == e.Status
}

// Timeout reports a TIMEOUT (as net.Error does).
func (e *Error) Timeout() bool { return e.Status == StatusTimeout }

// Prefix is the server's error code ("WRONGTYPE", "NOPERM") for errors the server sent; "".
func (e *Error) Prefix() string {
	switch e.Status {
	case StatusServer, StatusAuth, StatusBusyLoading, StatusClusterDown, StatusReadOnly:
		word, _, _ := strings.Cut(e.Message, " ")
		if word != "" && strings.ToUpper(word) == word {
			return word
		}
	}
	return ""
}

// Sentinels for errors.Is: any error with the same status matches.
var (
	ErrInvalidArgument = &Error{Status: StatusInvalidArgument, Category: CategoryGeneric}
	ErrConnection      = &Error{Status: StatusConnection, Category: CategoryConnection}
	ErrTimeout         = &Error{Status: StatusTimeout, Category: CategoryConnection}
	ErrAuth            = &Error{Status: StatusAuth, Category: CategoryAccessControl}
	ErrServer          = &Error{Status: StatusServer, Category: CategoryData}
	ErrBusyLoading     = &Error{Status: StatusBusyLoading, Category: CategoryConnection}
	ErrClusterDown     = &Error{Status: StatusClusterDown, Category: CategoryConnection}
	ErrReadOnly        = &Error{Status: StatusReadOnly, Category: CategoryData}
	ErrWatch           = &Error{Status: StatusWatch, Category: CategoryData}
	ErrPoolExhausted   = &Error{Status: StatusPoolExhausted, Category: CategoryGeneric}
	ErrProtocol        = &Error{Status: StatusProtocol, Category: CategoryGeneric}
	ErrTLS             = &Error{Status: StatusTLS, Category: CategoryConnection}
	ErrSentinel        = &Error{Status: StatusSentinel, Category: CategoryGeneric}
	ErrClosed          = &Error{Status: StatusClosed, Category: CategoryGeneric}
	ErrInternal        = &Error{Status: StatusInternal, Category: CategoryGeneric}
)

// ErrNil is what the typed helpers (String, Int64, ...) return for a nil reply (a missing key).
var ErrNil = &Error{Status: StatusOK, Category: CategoryNone, Message: "brisk: nil reply"}

func newError(status Status, message string) *Error {
	return &Error{Status: status, Category: status.Category(), Message: message}
}

// check turns a helper's status and message (malloc'd by bg.c, freed here) into an error.
func check(status C.brisk_status, msg *C.char) error {
	if status == C.BRISK_OK {
		return nil
	}
	text := ""
	if msg != nil {
		text = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	return newError(Status(status), text)
}

// The status an error element of a reply gets, by the server's error code.
var prefixStatus = map[string]Status{
	"NOPERM": StatusAuth, "WRONGPASS": StatusAuth, "NOAUTH": StatusAuth,
	"LOADING": StatusBusyLoading, "CLUSTERDOWN": StatusClusterDown, "READONLY": StatusReadOnly,
}

func errorElement(text string) *Error {
	word, _, _ := strings.Cut(text, " ")
	status, ok := prefixStatus[word]
	if !ok {
		status = StatusServer
	}
	return newError(status, text)
}
