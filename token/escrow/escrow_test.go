package escrow_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
	"github.com/certcenter/certcenter/token/escrow"
)

// openssl runs openssl in dir and fails the test on error.
func openssl(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issueEncryption escrows a key under a fresh serial and certifies it.
func issueEncryption(t *testing.T, env *testenv.Env, e *escrow.Escrow, alg signer.Algorithm, signing []byte) *x509.Certificate {
	t.Helper()
	serial, err := ca.NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := e.Generate(env.Ctx, serial, alg, signing, "req-test")
	if err != nil {
		t.Fatal(err)
	}
	// A retried issuance gets the same key.
	again, err := e.Generate(env.Ctx, serial, alg, signing, "req-test")
	if err != nil || !again.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatalf("second Generate for one serial made another key (%v)", err)
	}
	c, err := env.CA.Issue(env.Ctx, ca.IssueRequest{Profile: ca.ProfilePersonalEncryption, PublicKey: pub, Serial: serial,
		Subject: &pkix.Name{CommonName: "Zhang San", Organization: []string{"hospital"}}, EmailAddresses: []string{"zs@example.cn"}})
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestRecoverDecryptsWithOpenSSL(t *testing.T) {
	for _, alg := range []signer.Algorithm{signer.RSA2048, signer.ECDSAP256} {
		t.Run("ok/"+string(alg), func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			w, err := signer.NewFileWrapper(filepath.Join(env.Dir, testenv.KeysDir), "escrow-kek")
			if err != nil {
				t.Fatal(err)
			}
			e, err := escrow.New(escrow.Options{Store: env.Store, Wrapper: w, Now: env.Clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			holder := env.Issue(testenv.IssueOptions{CN: "Zhang San", Algorithm: signer.RSA2048})
			enc := issueEncryption(t, env, e, alg, holder.Serial)
			if enc.KeyUsage&x509.KeyUsageDigitalSignature != 0 {
				t.Fatalf("encryption certificate has digitalSignature (key usage %b)", enc.KeyUsage)
			}
			dir := t.TempDir()
			writePEM(t, filepath.Join(dir, "enc.crt"), "CERTIFICATE", enc.Raw)
			writePEM(t, filepath.Join(dir, "sign.crt"), "CERTIFICATE", holder.X509.Raw)
			hk, _ := x509.MarshalPKCS8PrivateKey(holder.Key)
			writePEM(t, filepath.Join(dir, "sign.key"), "PRIVATE KEY", hk)
			os.WriteFile(filepath.Join(dir, "msg.txt"), []byte("病历 medical record 42\n"), 0o600)
			openssl(t, dir, "cms", "-encrypt", "-aes256", "-in", "msg.txt", "-out", "msg.p7m", "-outform", "DER", "enc.crt")

			// CMS to the holder's signing certificate.
			d, err := e.Recover(env.Ctx, enc.SerialNumber.Bytes(), escrow.DeliverTo{Format: escrow.FormatCMS, Recipient: holder.X509})
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "key.p7m"), d.Body, 0o600)
			openssl(t, dir, "cms", "-decrypt", "-inform", "DER", "-in", "key.p7m", "-recip", "sign.crt", "-inkey", "sign.key", "-out", "enc.der")
			openssl(t, dir, "pkey", "-inform", "DER", "-in", "enc.der", "-out", "enc.key")
			if got := openssl(t, dir, "cms", "-decrypt", "-inform", "DER", "-in", "msg.p7m", "-recip", "enc.crt", "-inkey", "enc.key"); !bytes.Contains(got, []byte("medical record 42")) {
				t.Fatalf("decrypted %q", got)
			}

			// PKCS#12 under its one-time password.
			d, err = e.Recover(env.Ctx, enc.SerialNumber.Bytes(), escrow.DeliverTo{Format: escrow.FormatPKCS12})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Password) < 20 {
				t.Fatalf("password %q", d.Password)
			}
			os.WriteFile(filepath.Join(dir, "key.p12"), d.Body, 0o600)
			openssl(t, dir, "pkcs12", "-in", "key.p12", "-passin", "pass:"+d.Password, "-nodes", "-out", "p12.pem")
			if got := openssl(t, dir, "cms", "-decrypt", "-inform", "DER", "-in", "msg.p7m", "-recip", "p12.pem", "-inkey", "p12.pem"); !bytes.Contains(got, []byte("medical record 42")) {
				t.Fatalf("decrypted with the PKCS#12 key: %q", got)
			}
			cmd := exec.Command("openssl", "pkcs12", "-in", "key.p12", "-passin", "pass:wrong", "-nodes")
			cmd.Dir = dir
			if cmd.Run() == nil {
				t.Fatal("the PKCS#12 opened with a wrong password")
			}
		})
	}
}

func TestRecoverRefusals(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	w, _ := signer.NewFileWrapper(filepath.Join(env.Dir, testenv.KeysDir), "escrow-kek")
	e, err := escrow.New(escrow.Options{Store: env.Store, Wrapper: w})
	if err != nil {
		t.Fatal(err)
	}
	holder := env.Issue(testenv.IssueOptions{Algorithm: signer.RSA2048})
	ecHolder := env.Issue(testenv.IssueOptions{Algorithm: signer.ECDSAP256})
	a := issueEncryption(t, env, e, signer.RSA2048, holder.Serial).SerialNumber.Bytes()
	b := issueEncryption(t, env, e, signer.RSA2048, holder.Serial).SerialNumber.Bytes()
	read := func(s []byte) *store.EscrowedKey {
		var k *store.EscrowedKey
		if err := env.Store.View(env.Ctx, func(tx *store.Tx) (err error) { k, err = tx.EscrowedKey(s); return err }); err != nil {
			t.Fatal(err)
		}
		return k
	}
	put := func(k *store.EscrowedKey) {
		if err := env.Store.Update(env.Ctx, func(tx *store.Tx) error { return tx.PutEscrowedKey(k) }); err != nil {
			t.Fatal(err)
		}
	}
	cms := escrow.DeliverTo{Format: escrow.FormatCMS, Recipient: holder.X509}
	if _, err := e.Recover(env.Ctx, holder.Serial, cms); !errors.Is(err, escrow.ErrNoKey) {
		t.Fatalf("signing certificate: %v, want ErrNoKey", err)
	}
	if _, err := e.Recover(env.Ctx, a, escrow.DeliverTo{Format: escrow.FormatCMS, Recipient: ecHolder.X509}); !errors.Is(err, escrow.ErrRecipient) {
		t.Fatalf("EC recipient: %v, want ErrRecipient", err)
	}
	if _, err := e.Recover(env.Ctx, a, escrow.DeliverTo{Format: "pem"}); err == nil {
		t.Fatal("format pem accepted")
	}
	if _, err := e.Generate(env.Ctx, []byte{9}, signer.RSA4096, nil, ""); err == nil {
		t.Fatal("RSA 4096 accepted for an encryption key")
	}
	// b's wrapped key copied onto a's record does not open there.
	ka, kb := read(a), read(b)
	orig := bytes.Clone(ka.Wrapped)
	ka.Wrapped = kb.Wrapped
	put(ka)
	if err := e.Check(env.Ctx, a); !errors.Is(err, escrow.ErrCorrupt) || !errors.Is(err, signer.ErrUnwrap) {
		t.Fatalf("moved record: %v, want ErrCorrupt and ErrUnwrap", err)
	}
	// A flipped bit does not open.
	ka.Wrapped = bytes.Clone(orig)
	ka.Wrapped[len(orig)/2] ^= 1
	put(ka)
	if _, err := e.Recover(env.Ctx, a, cms); !errors.Is(err, escrow.ErrCorrupt) {
		t.Fatalf("tampered record: %v, want ErrCorrupt", err)
	}
	// The record's public key swapped for b's: the unwrapped key is not it.
	ka.Wrapped, ka.PublicKey = orig, kb.PublicKey
	put(ka)
	if err := e.Check(env.Ctx, a); !errors.Is(err, escrow.ErrCorrupt) {
		t.Fatalf("swapped public key: %v, want ErrCorrupt", err)
	}
	if err := e.Check(env.Ctx, b); err != nil {
		t.Fatalf("the untouched record: %v", err)
	}
}
