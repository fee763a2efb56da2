// Package httpapi is the one plumbing of the JSON APIs (ra, admin): the
// route type and Register, which every route goes through; the one
// authenticator (staff roles and organisations' certificate administrators,
// revocation checked per request); the one error type, the one mapping of
// CA and store errors to it (APIError) and the one function that renders
// it; the certificate view the API and the CLI share; JSON helpers,
// pagination and serial parsing.
package httpapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// Error is an API error with its HTTP status and a stable code.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error.
func Errorf(status int, code, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

// Common errors.
func BadRequest(format string, a ...any) *Error {
	return Errorf(http.StatusBadRequest, "bad_request", format, a...)
}
func NotFound(format string, a ...any) *Error {
	return Errorf(http.StatusNotFound, "not_found", format, a...)
}
func Forbidden(format string, a ...any) *Error {
	return Errorf(http.StatusForbidden, "forbidden", format, a...)
}
func Conflict(format string, a ...any) *Error {
	return Errorf(http.StatusConflict, "conflict", format, a...)
}

// HandlerFunc is an API handler that returns its error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// WriteError renders err as {"error": {"code", "message"}} and returns
// what it rendered. The status is APIError's; a 500's details go to the log
// only.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) *Error {
	ae := APIError(err)
	if ae.Status >= 500 && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
	return ae
}

// APIError is the one mapping from an error to the API error it means: an
// *Error anywhere in the chain keeps its status; the CA's and the store's
// sentinels become the status they mean, with the error's own text as the
// message; a body over the limit is a 413, a cancelled request a 503, and
// anything else a 500 that says no more than "internal error".
func APIError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, "too_large", "request body over %d bytes", mbe.Limit)
	case errors.Is(err, store.ErrReadOnly):
		// Disk below store.min_free_mb or a read-only file system: nothing
		// was written, and the operator has to act.
		return &Error{Status: http.StatusInsufficientStorage, Code: "store_read_only",
			Message: fmt.Sprintf("the store refuses writes, nothing was changed: %v", err), Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Errorf(http.StatusServiceUnavailable, "timeout", "request cancelled or timed out")
	}
	if ae := FromCA(err); ae != nil {
		return ae
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
}

// FromCA maps the sentinel errors of ca and store to API errors, or returns
// nil for any other error. A refused revocation is also a bad request
// (ca.ErrRefused matches both), so it is tested first: refusing is a
// conflict with the CA's state, not a malformed request.
func FromCA(err error) *Error {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ca.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: msg}
	case errors.Is(err, store.ErrAlreadyRevoked), errors.Is(err, ca.ErrRefused), errors.Is(err, store.ErrExists):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: msg}
	case errors.Is(err, ca.ErrBadRequest):
		return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: msg}
	}
	return nil
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// DecodeJSON reads a JSON body strictly (unknown fields are errors).
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return BadRequest("invalid JSON body: %v", err)
	}
	// Decode stops after the first value: a second one, or garbage, would
	// otherwise be ignored, and a client that sent two requests in one body
	// would believe both were read.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return BadRequest("invalid JSON body: data after the JSON value")
	}
	return nil
}

// Page reads ?limit= (default 100, at most 1000) and ?after= from a request.
func Page(r *http.Request) (limit int, after string, err error) {
	limit = 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return 0, "", BadRequest("limit must be between 1 and 1000")
		}
		limit = n
	}
	return limit, r.URL.Query().Get("after"), nil
}

// ErrPageFull stops a store scan once a page holds its limit.
var ErrPageFull = errors.New("page full")

// WritePage writes one page of a list: {"items": [...], "next": after}, next
// left out on the last page.
func WritePage(w http.ResponseWriter, items any, next string) error {
	resp := map[string]any{"items": items}
	if next != "" {
		resp["next"] = next
	}
	return WriteJSON(w, http.StatusOK, resp)
}

// maxSerialInput bounds what ParseSerial reads: 20 bytes in colon-separated
// hex with a prefix and some padding fit easily; more is not a serial.
const maxSerialInput = 128

// Fallback answers the requests under pattern (say "/api/") that no route
// of mux took: 405 with an Allow header when another method of the path is a
// route, else a JSON 404. Register it on mux as pattern, with no method.
func Fallback(mux *http.ServeMux, pattern string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if m == r.Method {
				continue
			}
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != "" && p != pattern {
				allow = append(allow, m)
			}
		}
		log := slog.New(slog.DiscardHandler)
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			WriteError(w, r, log, Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		WriteError(w, r, log, NotFound("no API endpoint %s", r.URL.Path))
	})
}

// ParseSerial reads a certificate serial from a path, query, body or the
// command line, as people copy it from other tools: hex in either case, with
// colons or spaces between groups, an optional 0x prefix, and an odd number
// of digits (tools that print the integer drop a leading zero: "10135f7" is
// 0x010135f7). The serial is an integer, so leading zero bytes (a DER sign
// byte, zero padding) are dropped: the answer is how the store keys it,
// big.Int.Bytes(). It must be positive and at most 20 bytes (RFC 5280
// §4.1.2.2). Errors are 400s that say what is wrong.
func ParseSerial(s string) ([]byte, error) {
	if len(s) > maxSerialInput {
		return nil, BadRequest("serial is longer than %d characters", maxSerialInput)
	}
	h := strings.NewReplacer(":", "", " ", "").Replace(s)
	if len(h) >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
	}
	if h == "" {
		return nil, BadRequest("serial %q is empty", s)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return nil, BadRequest("serial %q is not hex (%q at %d)", s, c, i)
		}
	}
	h = strings.TrimLeft(h, "0")
	if h == "" {
		return nil, BadRequest("serial %q is zero; serials are positive", s)
	}
	if len(h)%2 == 1 {
		h = "0" + h
	}
	if len(h) > 40 {
		return nil, BadRequest("serial %q is more than 20 bytes", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, BadRequest("serial %q is not hex", s)
	}
	return b, nil
}
