package ocsp

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unsafe"
)

// reqBuf is the per-request scratch space, pooled so a request allocates
// nothing for decoding and parsing.
type reqBuf struct {
	text []byte // normalised base64 of a GET
	der  []byte // the decoded or read request
	req  Request
}

func newReqBuf(maxBytes int) *reqBuf {
	return &reqBuf{
		text: make([]byte, 0, base64.StdEncoding.EncodedLen(maxBytes)),
		der:  make([]byte, maxBytes+1),
	}
}

// decodeGET turns the part of a GET path after the mount point into request
// DER. It accepts what clients actually send (RFC 6960 Appendix A.1 says
// url-encoded base64; in practice):
//   - base64 as is, '/' and '+' unescaped, with or without '=' padding;
//   - fully or partly percent-encoded (the server has decoded it once;
//     a second layer is decoded here);
//   - '+' turned into ' ' by a client that form-encoded the path;
//   - base64url ('-', '_'), padded or not;
//   - leading slashes (the URL in the certificate ends with '/', or the
//     client joined with "//") and "//" inside the base64, which is data.
//
// An OCSPRequest's DER starts with 0x30, whose base64 starts with 'M', so a
// leading '/' is never part of the data.
func (b *reqBuf) decodeGET(rest string) ([]byte, bool) {
	rest = strings.TrimLeft(rest, "/")
	if strings.IndexByte(rest, '%') >= 0 {
		u, err := url.PathUnescape(rest)
		if err != nil {
			return nil, false
		}
		rest = u
	}
	if len(rest) == 0 || len(rest) > cap(b.text) {
		return nil, false
	}
	// Most clients send padded standard base64 (RFC 6960 Appendix A.1,
	// percent-decoded above): decode it as it is, and normalise only what
	// that refuses.
	if n, err := base64.StdEncoding.Decode(b.der, unsafe.Slice(unsafe.StringData(rest), len(rest))); err == nil {
		return b.der[:n], true
	}
	return b.normalise(rest)
}

// normalise decodes the base64 variants clients send (see decodeGET).
func (b *reqBuf) normalise(rest string) ([]byte, bool) {
	t := b.text[:0]
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		case c == ' ', c == '-':
			c = '+'
		case c == '_':
			c = '/'
		case c == '=', c == '\r', c == '\n':
			continue
		default:
			return nil, false
		}
		t = append(t, c)
	}
	b.text = t
	n, err := base64.RawStdEncoding.Decode(b.der, t)
	if err != nil {
		return nil, false
	}
	return b.der[:n], true
}

// readPOST reads a request body of at most len(b.der)-1 bytes.
func (b *reqBuf) readPOST(body io.Reader, contentLength int64) ([]byte, bool) {
	limit := len(b.der) - 1
	if contentLength > int64(limit) {
		return nil, false
	}
	n := 0
	for n < len(b.der) {
		m, err := body.Read(b.der[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false
		}
	}
	if n > limit || n == 0 {
		return nil, false
	}
	return b.der[:n], true
}

// bufferedBody is the body net/http buffers before it must choose between
// Content-Length and chunked encoding (its bufferBeforeChunkingSize).
const bufferedBody = 2048

// ServeHTTP answers POST {Path} and GET {Path}/{base64}. Mount it for the
// path and everything below it, in front of any ServeMux: a mux would clean
// "//" inside the base64 and redirect the client.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var method int
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		method = mGET
	case http.MethodPost:
		method = mPOST
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "OCSP requests are GET or POST", http.StatusMethodNotAllowed)
		return
	}
	res := r.serve(w, req, method)
	r.m.requests[method][res].Inc()
	r.m.latency[method].Observe(time.Since(start).Seconds())
}

func (r *Responder) serve(w http.ResponseWriter, req *http.Request, method int) result {
	buf := r.bufs.Get().(*reqBuf)
	defer r.bufs.Put(buf)
	var der []byte
	var ok bool
	if method == mGET {
		rest, found := strings.CutPrefix(req.URL.Path, r.opts.Path)
		if found && rest != "" && rest[0] != '/' {
			found = false // "/ocspx": not ours
		}
		if !found {
			http.NotFound(w, req)
			return resMalformed
		}
		der, ok = buf.decodeGET(rest)
	} else {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(r.opts.BodyTimeout))
		der, ok = buf.readPOST(req.Body, req.ContentLength)
	}
	if !ok {
		return r.writeError(w, StatusMalformedRequest)
	}
	if err := ParseRequest(der, &buf.req); err != nil {
		return r.writeError(w, StatusMalformedRequest)
	}
	ids := buf.req.CertIDs
	ctx := req.Context()
	if r.opts.ReadOnly && len(ids) > 1 {
		return r.writeError(w, StatusTryLater) // a replica never signs
	}
	if !r.opts.ReadOnly && (len(ids) > 1 || (r.opts.SignNonces && buf.req.HasNonce)) {
		return r.serveLive(ctx, w, &buf.req)
	}
	iss := r.issuers.Load().match(&ids[0])
	if iss == nil {
		return r.writeError(w, StatusUnauthorized)
	}
	now := r.now()
	e, err := r.lookup(ctx, iss, &ids[0], now)
	if err != nil {
		return r.writeLookupError(w, err)
	}
	h := w.Header()
	h["Content-Type"] = r.hdrOCSP
	if method == mGET {
		h["Cache-Control"] = r.maxAge.cacheControl(e.nextUpdate, now)
		h["Last-Modified"] = e.lastModified
		h["Expires"] = e.expires
		h["Etag"] = e.etag
		if notModified(req, e) {
			w.WriteHeader(http.StatusNotModified)
			return resNotModified
		}
	}
	if req.Method == http.MethodHead || len(e.der)+len(e.tail) > bufferedBody {
		// net/http works out Content-Length itself from a body it still
		// holds in its buffer when the handler returns; a HEAD has no body
		// to measure, and a larger one would go out chunked.
		h["Content-Length"] = e.contentLength
	}
	w.WriteHeader(http.StatusOK)
	w.Write(e.der)
	if len(e.tail) > 0 {
		w.Write(e.tail)
	}
	if e.revoked {
		return resRevoked
	}
	return resGood
}

// serveLive answers a request only a new signature can answer: several
// CertIDs (one SingleResponse each, as OpenSSL and EJBCA do), or a nonce to
// echo. Both are rate-limited; over the limit a nonce is dropped (the client
// gets the pre-signed response, as RFC 5019 clients expect) and a
// multi-CertID request gets tryLater.
func (r *Responder) serveLive(ctx context.Context, w http.ResponseWriter, req *Request) result {
	var nonce []byte
	if r.opts.SignNonces && req.HasNonce {
		// RFC 8954 §2.1: a nonce of 0 or more than 32 octets is refused.
		if v := nonceValue(req.Nonce); len(v) == 0 || len(v) > 32 {
			return r.writeError(w, StatusMalformedRequest)
		}
		nonce = req.Nonce
	}
	if !r.live.allow() {
		if len(req.CertIDs) > 1 {
			return r.writeError(w, StatusTryLater)
		}
		iss := r.issuers.Load().match(&req.CertIDs[0])
		if iss == nil {
			return r.writeError(w, StatusUnauthorized)
		}
		e, err := r.lookup(ctx, iss, &req.CertIDs[0], r.now())
		if err != nil {
			return r.writeLookupError(w, err)
		}
		return r.writeDER(w, e.response(), e.revoked)
	}
	der, err := r.signLive(ctx, req.CertIDs, nonce)
	if err != nil {
		return r.writeLookupError(w, err)
	}
	return r.writeDER(w, der, false)
}

// writeDER writes a live-signed response: it answers one request (a nonce,
// a set of CertIDs) and is not for shared caches.
func (r *Responder) writeDER(w http.ResponseWriter, der []byte, revoked bool) result {
	h := w.Header()
	h["Content-Type"] = r.hdrOCSP
	h["Cache-Control"] = r.hdrNoStore
	w.WriteHeader(http.StatusOK)
	w.Write(der)
	if revoked {
		return resRevoked
	}
	return resGood
}

func (r *Responder) writeLookupError(w http.ResponseWriter, err error) result {
	switch {
	case errors.Is(err, errUnknown):
		return r.writeError(w, StatusUnauthorized)
	case errors.Is(err, errTryLater):
		return r.writeError(w, StatusTryLater)
	}
	return r.writeError(w, StatusInternalError)
}

// writeError writes an unsuccessful OCSPResponse. It has HTTP status 200 (the
// status is inside, RFC 6960 Appendix A) and must not be cached.
func (r *Responder) writeError(w http.ResponseWriter, s ResponseStatus) result {
	h := w.Header()
	h["Content-Type"] = r.hdrOCSP
	h["Cache-Control"] = r.hdrNoCache
	w.WriteHeader(http.StatusOK)
	w.Write(errorResponse(s))
	switch s {
	case StatusMalformedRequest:
		return resMalformed
	case StatusUnauthorized:
		return resUnauthorized
	case StatusTryLater:
		return resTryLater
	}
	return resInternalError
}

// notModified evaluates a conditional GET (RFC 9110 §13.2.2: If-None-Match
// wins over If-Modified-Since).
func notModified(req *http.Request, e *entry) bool {
	if inm := req.Header["If-None-Match"]; len(inm) > 0 {
		for _, v := range inm {
			for tag := range strings.SplitSeq(v, ",") {
				tag = strings.TrimSpace(tag)
				if tag == "*" || strings.TrimPrefix(tag, "W/") == e.etag[0] {
					return true
				}
			}
		}
		return false
	}
	if ims := req.Header.Get("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		return err == nil && !e.thisUpdate.Truncate(time.Second).After(t)
	}
	return false
}
