package crl

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// fullMaxAge bounds how long caches keep a full CRL. Full CRLs change on
// the schedule, so an hour is safe; delta CRLs are served "no-cache" (the
// cache revalidates every time, a cheap 304 while the ETag holds) because
// they change within seconds of a revocation.
const fullMaxAge = time.Hour

// ServeCRL serves GET /crl/{file}: a CA's CRL as DER, with ETag and
// Last-Modified for conditional requests. A stored CRL that is corrupt is
// regenerated, not served.
func (b *Builder) ServeCRL(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	der, m, etag, err := b.get(r.Context(), file)
	if errors.Is(err, ErrUnknownCRL) {
		http.Error(w, "no such CRL", http.StatusNotFound)
		return
	}
	if err != nil {
		b.log.Error("serving CRL", "file", file, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "CRL temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/pkix-crl")
	h.Set("ETag", etag)
	if m.BaseNumber != 0 {
		h.Set("Cache-Control", "public, no-cache, no-transform")
	} else {
		age := min(fullMaxAge, time.Until(m.NextUpdate))
		h.Set("Cache-Control", "public, no-transform, max-age="+strconv.Itoa(max(int(age.Seconds()), 0)))
		h.Set("Expires", m.NextUpdate.UTC().Format(http.TimeFormat))
	}
	http.ServeContent(w, r, file, m.ThisUpdate, bytes.NewReader(der))
}

// ServeCACert serves GET /ca/{file}: "<ca>.crt", the CA certificate as DER
// (the caIssuers URL of issued certificates).
func (b *Builder) ServeCACert(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".crt")
	if !ok {
		http.NotFound(w, r)
		return
	}
	iss, err := b.ca.Issuer(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(iss.Cert.Raw)
	h := w.Header()
	h.Set("Content-Type", "application/pkix-cert")
	h.Set("Cache-Control", "public, max-age=86400, no-transform")
	h.Set("ETag", fmt.Sprintf(`"%x"`, sum[:16]))
	http.ServeContent(w, r, name+".crt", iss.Cert.NotBefore, bytes.NewReader(iss.Cert.Raw))
}
