// Package httpapi holds what the JSON APIs (ra, admin) share: the one error
// type and the one function that renders it, JSON helpers, pagination, and
// authentication of the API's client certificates to a staff member.
package httpapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

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

// Handle adapts h, rendering any error it returns with WriteError.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

// WriteError renders err as {"error": {"code", "message"}}. An *Error keeps
// its status; anything else is a 500 whose details go to the log only.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var ae *Error
	if !errors.As(err, &ae) {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			ae = Errorf(http.StatusRequestEntityTooLarge, "too_large", "request body over %d bytes", mbe.Limit)
		case errors.Is(err, store.ErrReadOnly):
			// Disk below store.min_free_mb or file system read-only:
			// nothing was written, and the operator has to act.
			log.Error("api request refused: store read-only", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = Errorf(http.StatusInsufficientStorage, "store_read_only", "the store refuses writes, nothing was changed: %v", err)
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			ae = Errorf(http.StatusServiceUnavailable, "timeout", "request cancelled or timed out")
		default:
			log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = Errorf(http.StatusInternalServerError, "internal", "internal error")
		}
	} else if ae.Status >= 500 {
		log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
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

// NotBuilt answers 501 for a capability whose issue has not landed.
func NotBuilt(what string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, slog.New(slog.DiscardHandler), Errorf(http.StatusNotImplemented, "not_implemented", "%s is not built yet", what))
	})
}

// ParseSerial reads a certificate serial from a path or query: hex, colons
// and spaces allowed, 1 to 20 bytes (RFC 5280 §4.1.2.2).
func ParseSerial(s string) ([]byte, error) {
	s = strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s))
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > 20 {
		return nil, BadRequest("serial %q is not 1 to 20 bytes of hex", s)
	}
	return b, nil
}
