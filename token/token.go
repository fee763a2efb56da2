// Package token keeps the USBKey inventory and the secrets that unlock the
// tokens (SPEC Art. 4, 12, 25): one store.Token record per USBKey (serial,
// model, state, holder, organisation, the certificates on it) with its
// allowed state transitions, personalisation (binding a token from stock to
// a holder and the certificates whose keys it holds), queries by holder,
// serial and organisation, and the derivation of each token's SO PIN or
// admin key inside the signer from a master secret and the serial
// (Secrets), so no SO PIN is ever stored.
//
// It also holds the holder's side of an unlock (p11.go: C_Login as SO and
// C_InitPIN on a PKCS#11 token), which the `certcenter token` client
// command runs on the holder's machine.
//
// It does not decide who may unlock or replace a token, nor when: unlock
// and replacement are RA requests (package ra), approved through the RA's
// steps table; the RA reaches this package through the small interface it
// declares (ra.Tokens), filled in server/wire_token.go. Encryption keys and
// their escrow are token/escrow's.
package token

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Options configure the Service.
type Options struct {
	Store   *store.Store
	Audit   *audit.Log
	Deriver signer.Deriver
	Config  config.Tokens
	Auth    *httpapi.Authenticator
	Logger  *slog.Logger
	// Registerer receives the API's error counter; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now          func() time.Time
	MaxBodyBytes int64
}

// Service is the token inventory and its API.
type Service struct {
	st      *store.Store
	audit   *audit.Log
	cfg     config.Tokens
	secrets Secrets
	log     *slog.Logger
	now     func() time.Time
	opts    Options
	metrics *httpapi.Metrics
}

// New returns the Service.
func New(o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Audit == nil {
		o.Audit = audit.New(audit.Options{Store: o.Store, Logger: o.Logger, Now: o.Now})
	}
	if o.Auth == nil {
		o.Auth = &httpapi.Authenticator{Store: o.Store, Now: o.Now, Log: o.Logger}
	}
	if o.Config.DeriveSecret == "" {
		o.Config.DeriveSecret = "token-admin"
	}
	s := &Service{st: o.Store, audit: o.Audit, cfg: o.Config, secrets: Secrets{Deriver: o.Deriver, Name: o.Config.DeriveSecret},
		log: o.Logger.With("component", "token"), now: o.Now, opts: o}
	if o.Registerer != nil {
		m, err := httpapi.NewMetrics(o.Registerer, "token")
		if err != nil {
			return nil, fmt.Errorf("registering token API metrics: %w", err)
		}
		s.metrics = m
	}
	return s, nil
}

// Secrets returns the derivation of the tokens' secrets.
func (s *Service) Secrets() Secrets { return s.secrets }

// Prepare makes sure the master secret exists: it is created when missing
// and no token was ever personalised. A missing secret with personalised
// tokens is an error: a new secret would derive other SO PINs, and none of
// those tokens could be unlocked again.
func (s *Service) Prepare(ctx context.Context) error {
	if s.secrets.Deriver == nil {
		s.log.Warn("the signer cannot derive token secrets: USBKey personalisation and unlock are unavailable")
		return nil
	}
	_, err := s.secrets.Deriver.Derive(ctx, s.secrets.Name, []byte("probe"))
	if err == nil || !errors.Is(err, signer.ErrKeyNotFound) {
		return err
	}
	personalised := 0
	if err := s.st.View(ctx, func(tx *store.Tx) error {
		return tx.EachToken(func(t *store.Token) error {
			if !t.PersonalisedAt.IsZero() {
				personalised++
			}
			return nil
		})
	}); err != nil {
		return err
	}
	if personalised > 0 {
		return fmt.Errorf("tokens.derive_secret %q is missing from the signer but %d tokens were personalised with it: restore it from the backup of the CA keys", s.secrets.Name, personalised)
	}
	if err := s.secrets.Deriver.GenerateSecret(ctx, s.secrets.Name); err != nil && !errors.Is(err, signer.ErrKeyExists) {
		return fmt.Errorf("creating tokens.derive_secret %q: %w", s.secrets.Name, err)
	}
	s.log.Info("token master secret created", "secret", s.secrets.Name)
	return nil
}

// UnlockForm says how a token of model is unlocked: FormSOPIN or a
// challenge-response cipher.
func (s *Service) UnlockForm(model string) (string, error) {
	m, ok := s.cfg.Model(model)
	if !ok {
		return "", fmt.Errorf("token model %q is not in tokens.models", model)
	}
	return m.Unlock, nil
}

// UnlockAnswer makes, inside the signer, what unlocks tok: its SO PIN, or
// for a challenge-response model the challenge encrypted under its admin
// key. The RA calls it once per approved unlock request.
func (s *Service) UnlockAnswer(ctx context.Context, tok *store.Token, challenge []byte) (soPIN string, response []byte, err error) {
	form, err := s.UnlockForm(tok.Model)
	if err != nil {
		return "", nil, err
	}
	if form == FormSOPIN {
		pin, err := s.secrets.SOPIN(ctx, tok.Serial)
		return pin, nil, err
	}
	resp, err := s.secrets.Respond(ctx, form, tok.Serial, challenge)
	return "", resp, err
}

var tokenSerial = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// CheckSerial refuses a token serial the inventory cannot hold.
func CheckSerial(s string) error {
	if !tokenSerial.MatchString(s) {
		return httpapi.BadRequest("token serial %q: 1-64 of letters, digits, . _ : -", s)
	}
	return nil
}

// View is a token as the API shows it.
type View struct {
	Serial         string             `json:"serial"`
	Model          string             `json:"model"`
	State          string             `json:"state"`
	Holder         string             `json:"holder,omitempty"`
	HolderName     string             `json:"holder_name,omitempty"`
	Org            string             `json:"org,omitempty"`
	Certificates   []string           `json:"certificates"`
	PersonalisedAt time.Time          `json:"personalised_at,omitzero"`
	UpdatedAt      time.Time          `json:"updated_at"`
	History        []store.TokenEvent `json:"history"`
}

// ViewOf is the API view of t.
func ViewOf(t *store.Token) View {
	v := View{Serial: t.Serial, Model: t.Model, State: t.State, Holder: t.Holder, HolderName: t.HolderName, Org: t.OrgID,
		Certificates: []string{}, PersonalisedAt: t.PersonalisedAt, UpdatedAt: t.UpdatedAt, History: t.History}
	for _, c := range t.Certs {
		v.Certificates = append(v.Certificates, hex.EncodeToString(c))
	}
	if v.History == nil {
		v.History = []store.TokenEvent{}
	}
	return v
}

// AddRequest puts a token into stock.
type AddRequest struct {
	Serial string `json:"serial"`
	Model  string `json:"model"`
}

// Add records a new token in stock.
func (s *Service) Add(ctx context.Context, actor string, in AddRequest) (*store.Token, error) {
	if err := CheckSerial(in.Serial); err != nil {
		return nil, err
	}
	if _, ok := s.cfg.Model(in.Model); !ok {
		return nil, httpapi.BadRequest("model %q is not one of tokens.models", in.Model)
	}
	now := s.now().UTC()
	t := &store.Token{Serial: in.Serial, Model: in.Model, State: store.TokenInStock, UpdatedAt: now,
		History: []store.TokenEvent{{At: now, Actor: actor, State: store.TokenInStock, Note: "received into stock"}}}
	err := s.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		if err := tx.InsertToken(t); errors.Is(err, store.ErrExists) {
			return httpapi.Conflict("token %s is already in the inventory", in.Serial)
		} else if err != nil {
			return err
		}
		return log(audit.Record{Actor: actor, Action: "token.add", Object: "token/" + t.Serial, Details: map[string]string{"model": t.Model}})
	})
	return t, err
}

// PersonaliseRequest binds a token to its holder.
type PersonaliseRequest struct {
	// Holder is the holder's subscriber ID; default that of the first
	// certificate.
	Holder     string `json:"holder,omitempty"`
	HolderName string `json:"holder_name,omitempty"`
	Org        string `json:"org"`
	// Certificates are the serials (hex) whose keys are on the token.
	Certificates []string `json:"certificates"`
}

// Credential is what personalisation sets on the token: the SO PIN of a
// PKCS#11 token or the admin key of a challenge-response one. It is given
// once, to the staff member personalising the token, and never stored.
type Credential struct {
	Form     string `json:"form"`
	SOPIN    string `json:"so_pin,omitempty"`
	AdminKey string `json:"admin_key,omitempty"`
}

// Personalised is the answer to a personalisation.
type Personalised struct {
	Token      View       `json:"token"`
	Credential Credential `json:"credential"`
	Note       string     `json:"note"`
}

// Personalise moves a token from stock to its holder with the certificates
// on it, and returns the derived credential to set as the token's SO PIN
// (or admin key). Every certificate must be valid, of the organisation and
// of the holder, and on no other token.
func (s *Service) Personalise(ctx context.Context, actor, serial string, in PersonaliseRequest) (*Personalised, error) {
	if err := CheckSerial(serial); err != nil {
		return nil, err
	}
	if len(in.Certificates) == 0 {
		return nil, httpapi.BadRequest("certificates: name at least one certificate whose key is on the token")
	}
	if strings.ContainsRune(in.Holder, 0) || len(in.Holder) > 128 || len(in.HolderName) > 256 {
		return nil, httpapi.BadRequest("holder: at most 128 characters, no NUL")
	}
	var serials [][]byte
	for i, c := range in.Certificates {
		b, err := httpapi.ParseSerial(c)
		if err != nil {
			return nil, httpapi.BadRequest("certificates[%d]: %v", i, err)
		}
		serials = append(serials, b)
	}
	var t *store.Token
	var cred Credential
	err := s.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		var err error
		if t, err = tx.Token(serial); errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("token %s is not in the inventory", serial)
		} else if err != nil {
			return err
		}
		if t.State != store.TokenInStock {
			return httpapi.Conflict("token %s is %s; only a token in stock is personalised", serial, t.State)
		}
		if _, err := tx.Org(in.Org); err != nil {
			return httpapi.BadRequest("organisation %q does not exist", in.Org)
		}
		holder, name := in.Holder, in.HolderName
		for i, sn := range serials {
			c, err := tx.Cert(sn)
			if errors.Is(err, store.ErrNotFound) {
				return httpapi.BadRequest("certificates[%d]: no certificate %x", i, sn)
			} else if err != nil {
				return err
			}
			if c.Status == store.StatusRevoked {
				return httpapi.Conflict("certificates[%d]: certificate %x is revoked", i, sn)
			}
			if org, err := tx.CertOrg(sn); err != nil || org != in.Org {
				return httpapi.BadRequest("certificates[%d]: certificate %x was not issued to organisation %s", i, sn, in.Org)
			}
			if holder == "" {
				holder = c.SubscriberID
			}
			if c.SubscriberID != holder {
				return httpapi.BadRequest("certificates[%d]: certificate %x is %s's, not the holder %s's", i, sn, c.SubscriberID, holder)
			}
			if name == "" {
				name = c.CommonName
			}
			if on, err := tx.TokenOfCert(sn); err == nil && on.Serial != serial {
				return httpapi.Conflict("certificates[%d]: certificate %x is on token %s", i, sn, on.Serial)
			}
		}
		if holder == "" {
			return httpapi.BadRequest("holder: the certificates name no subscriber; give the holder")
		}
		// Derived inside the transaction, before anything is written: a
		// signer that cannot derive leaves the token in stock.
		if cred, err = s.credential(ctx, t); err != nil {
			return err
		}
		now := s.now().UTC()
		t.History = append(t.History, store.TokenEvent{At: now, Actor: actor, From: t.State, State: store.TokenIssued, Note: "personalised for " + holder})
		t.State, t.Holder, t.HolderName, t.OrgID, t.Certs = store.TokenIssued, holder, name, in.Org, serials
		t.PersonalisedAt, t.UpdatedAt, t.CredentialReleased = now, now, true
		if err := tx.PutToken(t); err != nil {
			return err
		}
		return log(audit.Record{Actor: actor, Action: "token.personalise", Object: "token/" + serial, Details: map[string]string{
			"holder": holder, "org": in.Org, "certificates": strings.Join(in.Certificates, ","), "form": cred.Form}})
	})
	if err != nil {
		return nil, err
	}
	note := "set the SO PIN above on the token now (C_Login as SO with the transport PIN, then C_SetPIN); it is not shown again and not stored"
	if cred.Form != FormSOPIN {
		note = "load the admin key above into the token now (the vendor's personalisation tool); it is not shown again and not stored"
	}
	return &Personalised{Token: ViewOf(t), Credential: cred, Note: note}, nil
}

func (s *Service) credential(ctx context.Context, t *store.Token) (Credential, error) {
	form, err := s.UnlockForm(t.Model)
	if err != nil {
		return Credential{}, err
	}
	if form == FormSOPIN {
		pin, err := s.secrets.SOPIN(ctx, t.Serial)
		return Credential{Form: form, SOPIN: pin}, err
	}
	key, err := s.secrets.AdminKey(ctx, form, t.Serial)
	return Credential{Form: form, AdminKey: hex.EncodeToString(key)}, err
}

// ReleaseCredential gives the derived credential of a token that left
// stock without a personalisation (the new token of a replacement) to the
// staff member setting it on the token, once.
func (s *Service) ReleaseCredential(ctx context.Context, actor, serial string) (*Personalised, error) {
	var t *store.Token
	var cred Credential
	err := s.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		var err error
		if t, err = tx.Token(serial); errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("token %s is not in the inventory", serial)
		} else if err != nil {
			return err
		}
		switch {
		case t.State != store.TokenIssued && t.State != store.TokenLocked:
			return httpapi.Conflict("token %s is %s; its credential is given when it leaves stock for a holder", serial, t.State)
		case t.CredentialReleased:
			return httpapi.Conflict("the credential of token %s was already given out; it is given once", serial)
		}
		if cred, err = s.credential(ctx, t); err != nil {
			return err
		}
		t.CredentialReleased = true
		if err := tx.PutToken(t); err != nil {
			return err
		}
		return log(audit.Record{Actor: actor, Action: "token.credential", Object: "token/" + serial, Details: map[string]string{"form": cred.Form}})
	})
	if err != nil {
		return nil, err
	}
	return &Personalised{Token: ViewOf(t), Credential: cred, Note: "set this on the token now; it is not shown again and not stored"}, nil
}

// StateRequest reports a token lost, damaged or retired outside a
// replacement (a token handed back, a token found broken in stock).
type StateRequest struct {
	State string `json:"state"`
	Note  string `json:"note"`
}

// reportable are the states a report may set; issued and locked follow
// from personalisation and unlock requests only.
var reportable = []string{store.TokenLost, store.TokenDamaged, store.TokenRetired}

// Report moves a token to a state in reportable.
func (s *Service) Report(ctx context.Context, actor, serial string, in StateRequest) (*store.Token, error) {
	if !slices.Contains(reportable, in.State) {
		return nil, httpapi.BadRequest("state %q: a report sets lost, damaged or retired", in.State)
	}
	if strings.TrimSpace(in.Note) == "" {
		return nil, httpapi.BadRequest("note: say why")
	}
	var t *store.Token
	err := s.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		var err error
		if t, err = tx.Token(serial); errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("token %s is not in the inventory", serial)
		} else if err != nil {
			return err
		}
		from := t.State
		if !store.TokenCanMove(from, in.State) {
			return httpapi.Conflict("token %s is %s; it cannot become %s", serial, from, in.State)
		}
		now := s.now().UTC()
		t.History = append(t.History, store.TokenEvent{At: now, Actor: actor, From: from, State: in.State, Note: in.Note})
		t.State, t.UpdatedAt = in.State, now
		if in.State == store.TokenRetired {
			// The certificates are no longer on a token in use.
			t.Certs = nil
		}
		if err := tx.PutToken(t); err != nil {
			return err
		}
		return log(audit.Record{Actor: actor, Action: "token.state", Object: "token/" + serial, Details: map[string]string{"from": from, "state": in.State, "note": in.Note}})
	})
	return t, err
}

// Get reads a token.
func (s *Service) Get(ctx context.Context, serial string) (*store.Token, error) {
	var t *store.Token
	err := s.st.View(ctx, func(tx *store.Tx) (err error) {
		t, err = tx.Token(serial)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, httpapi.NotFound("token %s is not in the inventory", serial)
	}
	return t, err
}

// OfCert returns the token a certificate is on, or nil.
func (s *Service) OfCert(ctx context.Context, serial []byte) (*store.Token, error) {
	var t *store.Token
	err := s.st.View(ctx, func(tx *store.Tx) (err error) {
		t, err = tx.TokenOfCert(serial)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return t, err
}

// Query selects tokens: by holder, by organisation, or all, optionally in
// one state, after a serial, at most limit.
type Query struct {
	Holder, Org, State, After string
	Limit                     int
}

// List returns one page of the tokens q selects and the serial to continue after.
func (s *Service) List(ctx context.Context, q Query) ([]*store.Token, string, error) {
	if q.State != "" && !slices.Contains(store.TokenStates, q.State) {
		return nil, "", httpapi.BadRequest("state %q is not one of %s", q.State, strings.Join(store.TokenStates, ", "))
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	var out []*store.Token
	next := ""
	each := func(t *store.Token) error {
		if t.Serial <= q.After || (q.State != "" && t.State != q.State) {
			return nil
		}
		if len(out) == q.Limit {
			next = out[len(out)-1].Serial
			return httpapi.ErrPageFull
		}
		out = append(out, t)
		return nil
	}
	err := s.st.View(ctx, func(tx *store.Tx) error {
		switch {
		case q.Holder != "":
			return tx.TokensOfHolder(q.Holder, each)
		case q.Org != "":
			return tx.TokensOfOrg(q.Org, each)
		}
		return tx.EachToken(each)
	})
	if err != nil && !errors.Is(err, httpapi.ErrPageFull) {
		return nil, "", err
	}
	return out, next, nil
}

// update runs fn in one store transaction with the audit entries it
// appends, and mirrors them to the log after the commit.
func (s *Service) update(ctx context.Context, fn func(tx *store.Tx, log func(audit.Record) error) error) error {
	var entries []*store.AuditEntry
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		entries = entries[:0]
		return fn(tx, func(r audit.Record) error {
			e, err := s.audit.AppendTx(tx, r)
			if err == nil {
				entries = append(entries, e)
			}
			return err
		})
	})
	if errors.Is(err, store.ErrTokenMove) {
		return httpapi.Conflict("%v", err)
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		s.audit.Logged(e)
	}
	return nil
}

// Register mounts the routes on mux.
func (s *Service) Register(mux *http.ServeMux) {
	httpapi.Register(mux, s.Routes(), httpapi.Mount{Auth: s.opts.Auth, Log: s.log, MaxBodyBytes: s.opts.MaxBodyBytes, Metrics: s.metrics})
}
