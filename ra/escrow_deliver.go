package ra

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// The one-time delivery of escrowed keys (escrow.go): a link per request,
// used once, and the HTTP handlers of the escrow routes.

const nsKeyDownload = "ra-keydownload"

type keyDownload struct {
	Request string    `json:"request"`
	Expires time.Time `json:"expires"`
}

// KeyLink is a one-time link to a key.
type KeyLink struct {
	URL     string    `json:"download_url"`
	Expires time.Time `json:"expires_at"`
	Format  string    `json:"format"`
}

// LinkKey makes the one one-time download link of the key of request id:
// an issued encryption certificate's or a recovered key. Before that — a
// recovery short of its approvals — it is refused with where the request
// stands, and the refusal audited.
func (r *RA) LinkKey(ctx context.Context, c *caller, id string) (*KeyLink, error) {
	if err := r.needEscrow(); err != nil {
		return nil, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	var link *KeyLink
	var refusal error
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		rq, err := r.readRequest(tx, id)
		if err != nil {
			return err
		}
		if rq.Escrow == nil {
			return httpapi.NotFound("request %s is a %s; it has no key to deliver", rq.ID, rq.Kind)
		}
		if c.Admin != nil && c.Admin.OrgID != rq.OrgID {
			return httpapi.Forbidden("request %s is organisation %s's", rq.ID, rq.OrgID)
		}
		if rq.State != StateIssued && rq.State != StateRecovered {
			refusal = httpapi.Conflict("request %s is %s%s; the key is not released", rq.ID, rq.State, progress(rq))
			return nil
		}
		if !rq.Escrow.LinkIssuedAt.IsZero() {
			refusal = httpapi.Conflict("the one-time link of request %s was made at %s for %s; a key is released once", rq.ID, rq.Escrow.LinkIssuedAt.Format(time.RFC3339), rq.Escrow.LinkIssuedTo)
			return nil
		}
		now := r.now().UTC()
		d := keyDownload{Request: rq.ID, Expires: now.Add(r.cfg.DownloadTTL.D())}
		v, _ := json.Marshal(d)
		if err := tx.PutBlob(nsKeyDownload, token, v); err != nil {
			return err
		}
		rq.Escrow.LinkIssuedAt, rq.Escrow.LinkIssuedTo = now, c.ID()
		if err := r.put(tx, rq); err != nil {
			return err
		}
		link = &KeyLink{URL: strings.TrimRight(r.cfg.DownloadBaseURL, "/") + "/api/v1/key-downloads/" + token, Expires: d.Expires, Format: rq.Escrow.Format}
		return log(audit.Record{Actor: c.ID(), Action: "escrow.link", Object: "request/" + rq.ID, Details: map[string]string{
			"serial": keySerialHex(rq), "format": rq.Escrow.Format, "expires": d.Expires.Format(time.RFC3339)}})
	})
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		r.auditRefusal(ctx, c, "request/"+id, "link", refusal)
		return nil, refusal
	}
	return link, nil
}

// progress says how far a request waiting for approvals has come.
func progress(rq *store.RARequest) string {
	if !isReview(rq.State) || rq.Step >= len(rq.Steps) {
		return ""
	}
	s := rq.Steps[rq.Step]
	return fmt.Sprintf(" with %d of %d approvals at %s", len(s.Approvals), s.Need, s.Name)
}

// keySerial is the certificate whose key a request delivers.
func keySerial(rq *store.RARequest) []byte {
	if rq.Kind == KindEncryptionCert {
		return rq.Serial
	}
	return rq.TargetSerial
}

func keySerialHex(rq *store.RARequest) string { return hex.EncodeToString(keySerial(rq)) }

// DownloadKey serves a one-time key link: the key is packaged for its
// holder, the link deleted and the request delivered in one transaction.
// A key that no longer unwraps, or a recipient revoked since, is refused
// with the reason and audited; the link stays.
func (r *RA) DownloadKey(ctx context.Context, token string) (*KeyDelivery, error) {
	if err := r.needEscrow(); err != nil {
		return nil, err
	}
	var d keyDownload
	var rq *store.RARequest
	var recipient *x509.Certificate
	err := r.st.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(nsKeyDownload, token)
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("this download link is unknown or was used already")
		} else if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		if r.now().After(d.Expires) {
			return httpapi.Errorf(http.StatusGone, "expired", "this download link expired at %s", d.Expires.Format(time.RFC3339))
		}
		if rq, err = tx.RARequest(d.Request); err != nil {
			return err
		}
		if rq.Escrow.Format == "cms" {
			_, x, err := r.validCert(tx, rq.Escrow.Recipient, rq.OrgID, "", "recipient signing certificate")
			if err != nil {
				return err
			}
			recipient = x
		}
		return nil
	})
	var ae *httpapi.Error
	if errors.As(err, &ae) && ae.Status == http.StatusGone {
		_ = r.st.Update(ctx, func(tx *store.Tx) error { return tx.DeleteBlob(nsKeyDownload, token) })
	}
	if err != nil {
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			r.auditRefusal(ctx, nil, "request/"+d.Request, "download", err)
		}
		return nil, err
	}
	out, err := r.opts.Escrow.Deliver(ctx, keySerial(rq), rq.Escrow.Format, recipient)
	if err != nil {
		r.auditRefusal(ctx, nil, "request/"+rq.ID, "download", err)
		return nil, escrowError(err)
	}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		if _, err := tx.Blob(nsKeyDownload, token); errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("this download link is unknown or was used already")
		} else if err != nil {
			return err
		}
		if err := tx.DeleteBlob(nsKeyDownload, token); err != nil {
			return err
		}
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		if cur.State == StateIssued || cur.State == StateRecovered {
			if err := r.move(cur, StateDelivered, "link", "deliver", "key downloaded through the one-time link as "+cur.Escrow.Format); err != nil {
				return err
			}
			if err := r.put(tx, cur); err != nil {
				return err
			}
		}
		details := map[string]string{"serial": keySerialHex(cur), "format": cur.Escrow.Format}
		if recipient != nil {
			details["recipient"] = hex.EncodeToString(recipient.SerialNumber.Bytes())
		}
		return log(audit.Record{Actor: "link", Action: "escrow.deliver", Object: "request/" + cur.ID, Details: details})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ---- handlers ----

func escrowSubmission(req *http.Request) (EscrowSubmission, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return EscrowSubmission{}, err
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	return EscrowSubmission{Body: body, JSON: mt == "application/json"}, nil
}

func (r *RA) submitEncryptionCert(w http.ResponseWriter, req *http.Request) error {
	s, err := escrowSubmission(req)
	if err != nil {
		return err
	}
	rq, err := r.SubmitEncryptionCert(req.Context(), callerFrom(req.Context()), s)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, r.view(rq))
}

func (r *RA) submitKeyRecovery(w http.ResponseWriter, req *http.Request) error {
	s, err := escrowSubmission(req)
	if err != nil {
		return err
	}
	rq, err := r.SubmitKeyRecovery(req.Context(), callerFrom(req.Context()), s)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, r.view(rq))
}

func (r *RA) linkKey(w http.ResponseWriter, req *http.Request) error {
	l, err := r.LinkKey(req.Context(), callerFrom(req.Context()), req.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, l)
}

// PasswordHeader carries a PKCS#12 delivery's one-time password.
const PasswordHeader = "X-Certcenter-Pkcs12-Password"

func (r *RA) downloadKey(w http.ResponseWriter, req *http.Request) error {
	d, err := r.DownloadKey(req.Context(), req.PathValue("token"))
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", d.ContentType)
	h.Set("Cache-Control", "no-store")
	if d.Password != "" {
		h.Set(PasswordHeader, d.Password)
	}
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(d.Body)
	return err
}

// escrowRoutes are the escrow endpoints, listed in Routes.
func (r *RA) escrowRoutes() []httpapi.Route {
	submitters := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer}, Admins: true}
	return []httpapi.Route{
		{Method: "POST", Pattern: "/api/v1/ra/encryption-certificates", Handler: r.submitEncryptionCert, Access: submitters},
		{Method: "POST", Pattern: "/api/v1/ra/key-recoveries", Handler: r.submitKeyRecovery, Access: submitters},
		{Method: "POST", Pattern: "/api/v1/requests/{id}/key-link", Handler: r.linkKey, Access: submitters},
		{Method: "GET", Pattern: "/api/v1/key-downloads/{token}", Handler: r.downloadKey, Access: httpapi.Access{Public: true}},
	}
}
