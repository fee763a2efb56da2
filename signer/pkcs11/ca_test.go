package pkcs11

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// TestCA runs the issuing authority on the HSM: Init makes the CA and OCSP
// keys in the token, Issue signs with them, crypto/x509 verifies the chain,
// and after a restart (new Provider, new Authority, same token and store)
// the CA finds its keys by name and issues again.
func TestCA(t *testing.T) {
	tok := newToken(t, "ca")
	ctx := context.Background()
	for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.RSA2048} {
		t.Run(string(alg), func(t *testing.T) {
			st, err := store.Open(store.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			name := "hsm-" + string(alg)
			p, err := Open(ctx, tok.options(t, 4))
			if err != nil {
				t.Fatal(err)
			}
			a := ca.New(ca.Options{Store: st, Signers: p, PublicURL: "http://localhost:8080", LDAPURL: "ldap://localhost:1389"})
			iss, err := a.Init(ctx, ca.InitOptions{Name: name, CommonName: "HSM CA", Algorithm: alg, Validity: 24 * time.Hour * 365})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := iss.Signer.(*Key); !ok {
				t.Fatalf("CA signer is %T, want the token's *Key", iss.Signer)
			}
			if id := iss.Signer.(*Key).ID(); !bytes.Equal(id, iss.Cert.SubjectKeyId) {
				t.Errorf("CKA_ID %x differs from the CA certificate's SKI %x", id, iss.Cert.SubjectKeyId)
			}
			issueAndVerify(t, a, name, iss.Cert)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}

			// Restart: the keys are found in the token by the names in the store.
			p2, err := Open(ctx, tok.options(t, 4))
			if err != nil {
				t.Fatal(err)
			}
			defer p2.Close()
			a2 := ca.New(ca.Options{Store: st, Signers: p2, PublicURL: "http://localhost:8080", LDAPURL: "ldap://localhost:1389"})
			if err := a2.Load(ctx); err != nil {
				t.Fatal(err)
			}
			issueAndVerify(t, a2, name, iss.Cert)
		})
	}
}

func issueAndVerify(t *testing.T, a *ca.Authority, name string, root *x509.Certificate) {
	t.Helper()
	ctx := context.Background()
	subscriber, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Issue(ctx, ca.IssueRequest{
		CA:        name,
		Profile:   ca.ProfileServerTLS,
		PublicKey: subscriber.Public(),
		Subject:   &pkix.Name{CommonName: "www.example.org"},
		DNSNames:  []string{"www.example.org"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	chains, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "www.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) != 1 || len(chains[0]) != 2 {
		t.Fatalf("chains %v, want one of leaf and root", chains)
	}
	// The delegated OCSP responder's certificate was signed by the token too.
	iss, err := a.Issuer(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := iss.OCSPCert.CheckSignatureFrom(root); err != nil {
		t.Fatalf("OCSP responder certificate: %v", err)
	}
	if _, ok := iss.OCSPSigner.(*Key); !ok {
		t.Fatalf("OCSP signer is %T, want the token's *Key", iss.OCSPSigner)
	}
}
