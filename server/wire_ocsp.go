package server

import "github.com/certcenter/certcenter/internal/httpapi"

// wireOCSP mounts the OCSP responder (issue: OCSP responder).
func wireOCSP(c *components) error {
	c.public.Handle("/ocsp", httpapi.NotBuilt("the OCSP responder"))
	c.public.Handle("/ocsp/", httpapi.NotBuilt("the OCSP responder"))
	return nil
}
