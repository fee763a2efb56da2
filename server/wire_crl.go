package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/certcenter/certcenter/internal/httpapi"
)

// wireCRL mounts CRL distribution and the CA certificates (caIssuers URLs).
func wireCRL(c *components) error {
	c.public.Handle("GET /crl/", httpapi.NotBuilt("CRL distribution"))
	c.public.HandleFunc("GET /ca/{file}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutSuffix(r.PathValue("file"), ".crt")
		if !ok {
			http.NotFound(w, r)
			return
		}
		iss, err := c.core.ca.Issuer(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		http.ServeContent(w, r, name+".crt", iss.Cert.NotBefore.Truncate(time.Second), strings.NewReader(string(iss.Cert.Raw)))
	})
	return nil
}
