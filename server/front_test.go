package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestFrontRoutesBypassPathCleaning: OCSP GET paths with "//" inside the
// base64 must reach the responder, not get a ServeMux redirect.
func TestFrontRoutesBypassPathCleaning(t *testing.T) {
	c := &components{public: http.NewServeMux()}
	c.public.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	var got string
	c.addFront("/ocsp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path
		w.WriteHeader(http.StatusOK)
	}))
	h := c.publicHandler(func(h http.Handler) http.Handler { return h })
	tests := []struct {
		name, target string
		code         int
		front        bool
	}{
		{"ocsp/double-slash-inside", "/ocsp/MEIw//AB+C", http.StatusOK, true},
		{"ocsp/leading-double-slash", "/ocsp//MEIw", http.StatusOK, true},
		{"ocsp/post-path", "/ocsp", http.StatusOK, true},
		{"other/prefix-lookalike", "/ocspx", http.StatusNotFound, false},
		{"other/mux", "/healthz", http.StatusNoContent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = ""
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.target, nil))
			if w.Code != tt.code {
				t.Fatalf("HTTP %d, want %d", w.Code, tt.code)
			}
			if tt.front && got != tt.target {
				t.Errorf("front handler saw %q, want %q", got, tt.target)
			}
		})
	}
}
