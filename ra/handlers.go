package ra

import (
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/certcenter/certcenter/internal/httpapi"
)

// The handlers of the request workflow only decode, call the machine
// (Submit, Decide) and encode; the policy is in steps.go.

type submitResponse struct {
	Application string        `json:"application"`
	Requests    []requestView `json:"requests"`
}

func (r *RA) submit(w http.ResponseWriter, req *http.Request) error {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	got, err := r.Submit(req.Context(), callerFrom(req.Context()), Submission{Body: body, JSON: mt == "application/json"})
	if err != nil {
		return err
	}
	out := submitResponse{Application: got.Application, Requests: make([]requestView, 0, len(got.Requests))}
	for _, rq := range got.Requests {
		out.Requests = append(out.Requests, r.view(rq))
	}
	return httpapi.WriteJSON(w, http.StatusCreated, out)
}

type decision struct {
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func (r *RA) decide(w http.ResponseWriter, req *http.Request, approve bool) error {
	var d decision
	if req.ContentLength != 0 {
		if err := httpapi.DecodeJSON(req, &d); err != nil {
			return err
		}
	}
	rq, err := r.Decide(req.Context(), callerFrom(req.Context()), req.PathValue("id"), Decision{Approve: approve, Comment: d.Comment, Reason: d.Reason})
	var ne *NotExecutedError
	if errors.As(err, &ne) {
		return httpapi.Errorf(http.StatusServiceUnavailable, "retry_later", "%v", ne)
	}
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, r.view(rq))
}

func (r *RA) approve(w http.ResponseWriter, req *http.Request) error { return r.decide(w, req, true) }
func (r *RA) reject(w http.ResponseWriter, req *http.Request) error  { return r.decide(w, req, false) }
