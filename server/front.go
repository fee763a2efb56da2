package server

import (
	"net/http"
	"strings"
)

// frontRoute is a path prefix served before the public ServeMux sees the
// request. ServeMux cleans paths and redirects "//" to "/", which breaks
// OCSP GET requests: their base64 may contain "//" (boulder's and cfssl's
// responders both had outages from exactly this).
type frontRoute struct {
	prefix string
	h      http.Handler
}

// addFront serves prefix and every path below it with h, unrouted.
func (c *components) addFront(prefix string, h http.Handler) {
	c.front = append(c.front, frontRoute{prefix: strings.TrimRight(prefix, "/"), h: h})
}

// publicHandler is the public mux behind the front routes. The front
// routes count and time themselves (the OCSP responder has its own metrics),
// so only the mux goes through the listener's generic metrics.
func (c *components) publicHandler(metered func(http.Handler) http.Handler) http.Handler {
	mux := metered(c.public)
	if len(c.front) == 0 {
		return mux
	}
	routes := c.front
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		for _, f := range routes {
			if strings.HasPrefix(p, f.prefix) && (len(p) == len(f.prefix) || p[len(f.prefix)] == '/') {
				f.h.ServeHTTP(w, r)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}
