package ra

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"testing"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
	"github.com/certcenter/certcenter/token/escrow"
)

// testKeys is ra.KeyEscrow over the real token/escrow, as
// server/wire_escrow.go builds it (refusal mapping left out: these tests
// look at execution, not at refusals).
type testKeys struct{ e *escrow.Escrow }

func (k testKeys) Generate(ctx context.Context, serial []byte, alg signer.Algorithm, signing []byte, req string) (crypto.PublicKey, error) {
	return k.e.Generate(ctx, serial, alg, signing, req)
}
func (k testKeys) Paired(ctx context.Context, serial []byte) ([]byte, error) {
	return k.e.Has(ctx, serial)
}
func (k testKeys) Check(ctx context.Context, serial []byte) error { return k.e.Check(ctx, serial) }
func (k testKeys) Deliver(ctx context.Context, serial []byte, format string, to *x509.Certificate) (*KeyDelivery, error) {
	d, err := k.e.Recover(ctx, serial, escrow.DeliverTo{Format: format, Recipient: to})
	if err != nil {
		return nil, err
	}
	return &KeyDelivery{ContentType: d.ContentType, Body: d.Body, Password: d.Password}, nil
}

// lostAnswer is an Authority whose next Issue fails before signing
// (refuse), or commits and then reports an error (lose), as a CA outage
// or a crash after the commit would.
type lostAnswer struct {
	*scripted
	refuse, lose bool
	issued       int
}

func (l *lostAnswer) Issue(ctx context.Context, req ca.IssueRequest) (*store.Cert, error) {
	if l.refuse {
		l.refuse = false
		return nil, errors.New("CA unreachable")
	}
	c, err := l.scripted.Issue(ctx, req)
	if err == nil {
		l.issued++
	}
	if err == nil && l.lose {
		l.lose = false
		return nil, errors.New("connection reset after the commit")
	}
	return c, err
}

// TestEncryptionCertCrashSafety: the key is escrowed under the serial
// recorded before signing; an execution that stops after the escrow (the CA
// down) or loses the CA's answer is finished by Repair or by the retry with
// one key and one certificate, and the certificate certifies the escrowed
// key.
func TestEncryptionCertCrashSafety(t *testing.T) {
	ctx := context.Background()
	var la *lostAnswer
	e := newExecEnv(t, nil, nil, func(o *Options) {
		la = &lostAnswer{scripted: o.Authority.(*scripted)}
		o.Authority = la
	})
	w, err := signer.NewFileWrapper(t.TempDir(), "kek")
	if err != nil {
		t.Fatal(err)
	}
	esc, err := escrow.New(escrow.Options{Store: e.st, Wrapper: w})
	if err != nil {
		t.Fatal(err)
	}
	e.r.opts.Escrow = testKeys{esc}

	for i, tc := range []struct {
		name         string
		refuse, lose bool
	}{
		{"ok/CA down after the escrow, finished by Repair", true, false},
		{"ok/answer lost after the commit, adopted", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, _ := signer.GenerateKey(signer.RSA2048)
			sub := fmt.Sprintf("sub-%d", i)
			sc, err := e.auth.Authority.Issue(ctx, ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(), SubscriberID: sub,
				Subject: &pkix.Name{CommonName: sub, Organization: []string{"Org"}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.st.Update(ctx, func(tx *store.Tx) error { return tx.PutOrgCert("o", sc.Serial) }); err != nil {
				t.Fatal(err)
			}
			rq, err := e.r.SubmitEncryptionCert(ctx, e.officer, EscrowSubmission{JSON: true,
				Body: []byte(fmt.Sprintf(`{"org":"o","signing_serial":"%x","algorithm":"ecdsa-p256","delivery":"pkcs12"}`, sc.Serial))})
			if err != nil {
				t.Fatal(err)
			}
			approver := e.officer
			e.officer = &caller{Staff: &store.Staff{ID: "officer2", Role: approver.Staff.Role}}
			defer func() { e.officer = approver }()
			la.refuse, la.lose, la.issued = tc.refuse, tc.lose, 0
			_, aerr := e.approve(ctx, rq.ID)
			got, _ := e.request(rq.ID)
			if tc.refuse {
				if aerr == nil || got.State != StateEscrowing || len(got.SigningSerial) == 0 {
					t.Fatalf("approve = %v, request %s serial %x; want it left escrowing with its serial", aerr, got.State, got.SigningSerial)
				}
				if _, err := esc.Has(ctx, got.SigningSerial); err != nil {
					t.Fatalf("no key escrowed under the recorded serial: %v", err)
				}
				e.r.Repair(ctx)
				got, _ = e.request(rq.ID)
			} else if aerr != nil {
				t.Fatalf("approve: %v", aerr)
			}
			if got.State != StateIssued || la.issued != 1 {
				t.Fatalf("request %s after %d issuances; want issued once", got.State, la.issued)
			}
			var enc []*store.Cert
			e.st.View(ctx, func(tx *store.Tx) error {
				return tx.CertsBySubscriber(sub, func(c *store.Cert) error {
					if c.Profile == ca.ProfilePersonalEncryption {
						enc = append(enc, c)
					}
					return nil
				})
			})
			if len(enc) != 1 || string(enc[0].Serial) != string(got.SigningSerial) {
				t.Fatalf("%d encryption certificates; want one with the recorded serial", len(enc))
			}
			if err := esc.Check(ctx, enc[0].Serial); err != nil {
				t.Fatalf("the certificate does not certify the escrowed key: %v", err)
			}
		})
	}
}
