// Package escrow makes, keeps and recovers the private keys of encryption
// certificates (SPEC Art. 4, 13). Chinese practice gives each person a
// signing certificate, whose key is made on their USBKey and never leaves
// it, and an encryption certificate, whose key the CA's key-management side
// makes and escrows so that data encrypted to it can be recovered when the
// token is lost or a court orders it.
//
// It owns: making the key pair, sealing its PKCS#8 form under the signer's
// key-encryption key (signer.KeyWrapper) into a store.EscrowedKey record
// before the certificate is signed, and recovering it — unwrapping, checking
// it against the record and the certificate, and packaging it for its
// holder either as a CMS EnvelopedData to the holder's RSA signing
// certificate or as a PKCS#12 under a one-time password. The clear key
// exists only in memory, never on disk or in a log.
//
// It does not decide who may have a key recovered, count approvals, audit
// or deliver: the RA's request kinds encryption_cert and key_recovery do
// (ra/escrow*.go), reaching this package through the small interface they
// declare, filled in server/wire_escrow.go. The token package's USBKey
// replacement reaches Recover the same way.
package escrow

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/smallstep/pkcs7"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Errors of Recover and Check; match them with errors.Is.
var (
	// ErrNoKey: no key is escrowed for the serial (a signing certificate,
	// or an encryption certificate made elsewhere).
	ErrNoKey = errors.New("no escrowed key for this certificate")
	// ErrCorrupt: the record does not unwrap under the KEK, or what it
	// unwraps to is not the certified key. signer.ErrUnwrap is in its chain
	// when the KEK refused it.
	ErrCorrupt = errors.New("escrowed key record is damaged")
	// ErrRecipient: the recipient cannot receive the delivery format (CMS
	// needs an RSA certificate; see envelope).
	ErrRecipient = errors.New("recipient certificate cannot receive this delivery")
)

// Delivery formats.
const (
	FormatCMS    = "cms"
	FormatPKCS12 = "pkcs12"
)

// Options configure an Escrow.
type Options struct {
	Store *store.Store
	// Wrapper holds the key-encryption key. Required.
	Wrapper signer.KeyWrapper
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Escrow makes, keeps and recovers escrowed keys.
type Escrow struct {
	st  *store.Store
	w   signer.KeyWrapper
	log *slog.Logger
	now func() time.Time
	gen func(signer.Algorithm) (crypto.Signer, error)
}

// New returns an Escrow.
func New(o Options) (*Escrow, error) {
	if o.Store == nil || o.Wrapper == nil {
		return nil, errors.New("escrow: Store and Wrapper are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Escrow{st: o.Store, w: o.Wrapper, log: o.Logger.With("component", "escrow"), now: o.Now, gen: signer.GenerateKey}, nil
}

// Mechanism names the KEK keys are wrapped under.
func (e *Escrow) Mechanism() string { return e.w.Mechanism() }

// aad binds a wrapped key to its record: moved onto another serial's
// record it no longer unwraps.
func aad(serial []byte) []byte {
	return []byte("certcenter escrowed key v1 serial " + hex.EncodeToString(serial))
}

// Algorithms an encryption key may have: RSA 2048 or ECDSA P-256 (SPEC
// Art. 13 names no algorithm; these are what USBKeys and mail clients take).
func checkAlgorithm(alg signer.Algorithm) error {
	if alg != signer.RSA2048 && alg != signer.ECDSAP256 {
		return fmt.Errorf("encryption key algorithm %q is not %s or %s", alg, signer.RSA2048, signer.ECDSAP256)
	}
	return nil
}

// Generate makes a key pair of alg, escrows its private key wrapped under
// serial (the serial the encryption certificate will carry), and returns
// the public key to certify. If serial has a key already — an issuance
// retried after a crash or a lost answer — that key's public half is
// returned and nothing new is made, so the certificate always certifies
// the escrowed key.
func (e *Escrow) Generate(ctx context.Context, serial []byte, alg signer.Algorithm, signingSerial []byte, request string) (crypto.PublicKey, error) {
	if len(serial) == 0 {
		return nil, errors.New("escrow: empty serial")
	}
	if err := checkAlgorithm(alg); err != nil {
		return nil, err
	}
	if k, err := e.record(ctx, serial); err == nil {
		return x509.ParsePKIXPublicKey(k.PublicKey)
	} else if !errors.Is(err, ErrNoKey) {
		return nil, err
	}
	key, err := e.gen(alg)
	if err != nil {
		return nil, fmt.Errorf("generating the encryption key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the encryption key: %w", err)
	}
	wrapped, err := e.w.Wrap(ctx, der, aad(serial))
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("wrapping the encryption key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	rec := &store.EscrowedKey{Serial: serial, Algorithm: string(alg), PublicKey: spki, Wrapped: wrapped, Mechanism: e.w.Mechanism(),
		SigningSerial: signingSerial, Request: request, CreatedAt: e.now().UTC()}
	err = e.st.Update(ctx, func(tx *store.Tx) error { return tx.InsertEscrowedKey(rec) })
	if errors.Is(err, store.ErrExists) {
		// Another execution of the same request escrowed first: certify
		// its key, drop ours.
		k, err := e.record(ctx, serial)
		if err != nil {
			return nil, err
		}
		return x509.ParsePKIXPublicKey(k.PublicKey)
	}
	if err != nil {
		return nil, fmt.Errorf("storing the escrowed key %x: %w", serial, err)
	}
	e.log.Info("encryption key escrowed", "serial", hex.EncodeToString(serial), "algorithm", alg, "kek", e.w.Mechanism(), "request", request)
	return key.Public(), nil
}

func (e *Escrow) record(ctx context.Context, serial []byte) (*store.EscrowedKey, error) {
	var k *store.EscrowedKey
	err := e.st.View(ctx, func(tx *store.Tx) (err error) {
		k, err = tx.EscrowedKey(serial)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("certificate %x: %w", serial, ErrNoKey)
	}
	return k, err
}

// Has reports whether serial has an escrowed key, and the signing
// certificate it is paired with.
func (e *Escrow) Has(ctx context.Context, serial []byte) (signingSerial []byte, err error) {
	k, err := e.record(ctx, serial)
	if err != nil {
		return nil, err
	}
	return k.SigningSerial, nil
}

// unwrap returns serial's private key and its certificate (nil if not
// issued yet), checked against the record and the certificate.
func (e *Escrow) unwrap(ctx context.Context, serial []byte) (crypto.Signer, *x509.Certificate, error) {
	var k *store.EscrowedKey
	var certDER []byte
	err := e.st.View(ctx, func(tx *store.Tx) (err error) {
		if k, err = tx.EscrowedKey(serial); err != nil {
			return err
		}
		if c, err := tx.Cert(serial); err == nil {
			certDER = c.DER
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("certificate %x: %w", serial, ErrNoKey)
	}
	if err != nil {
		return nil, nil, err
	}
	der, err := e.w.Unwrap(ctx, k.Wrapped, aad(serial))
	if errors.Is(err, signer.ErrUnwrap) {
		return nil, nil, fmt.Errorf("certificate %x: %w: %w", serial, ErrCorrupt, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("unwrapping the key of certificate %x: %w", serial, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %x: %w: the unwrapped key does not parse", serial, ErrCorrupt)
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("certificate %x: %w: key type %T", serial, ErrCorrupt, parsed)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil || !bytes.Equal(spki, k.PublicKey) {
		return nil, nil, fmt.Errorf("certificate %x: %w: the unwrapped key is not the recorded one", serial, ErrCorrupt)
	}
	var cert *x509.Certificate
	if certDER != nil {
		if cert, err = x509.ParseCertificate(certDER); err != nil {
			return nil, nil, fmt.Errorf("parsing certificate %x: %w", serial, err)
		}
		if !bytes.Equal(cert.RawSubjectPublicKeyInfo, spki) {
			return nil, nil, fmt.Errorf("certificate %x: %w: it certifies another key than the escrowed one", serial, ErrCorrupt)
		}
	}
	return key, cert, nil
}

// Check unwraps serial's key and checks it, without packaging it: what a
// request checks before it is stored.
func (e *Escrow) Check(ctx context.Context, serial []byte) error {
	_, _, err := e.unwrap(ctx, serial)
	return err
}

// DeliverTo says how a recovered key reaches its holder.
type DeliverTo struct {
	// Format is FormatCMS or FormatPKCS12.
	Format string
	// Recipient is the certificate a CMS envelope is made for: the
	// holder's signing certificate (RSA).
	Recipient *x509.Certificate
}

// Delivery is a key packaged for its holder. Body is ciphertext only.
type Delivery struct {
	Format      string
	ContentType string
	// Serial is the encryption certificate's.
	Serial []byte
	Body   []byte
	// Password opens a PKCS#12 Body; it is made for this delivery only and
	// kept nowhere.
	Password string
}

// Recover unwraps the escrowed key of the encryption certificate serial,
// checks it, and packages it as to says. ErrNoKey, ErrCorrupt and
// ErrRecipient say why it refused; nothing is changed either way.
func (e *Escrow) Recover(ctx context.Context, serial []byte, to DeliverTo) (*Delivery, error) {
	switch to.Format {
	case FormatCMS:
		if err := CanEnvelope(to.Recipient); err != nil {
			return nil, err
		}
	case FormatPKCS12:
	default:
		return nil, fmt.Errorf("delivery format %q is not %s or %s", to.Format, FormatCMS, FormatPKCS12)
	}
	key, cert, err := e.unwrap(ctx, serial)
	if err != nil {
		return nil, err
	}
	d := &Delivery{Format: to.Format, Serial: serial}
	switch to.Format {
	case FormatCMS:
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		d.Body, err = e.envelope(der, to.Recipient)
		clear(der)
		if err != nil {
			return nil, fmt.Errorf("enveloping the key of certificate %x: %w", serial, err)
		}
		d.ContentType = "application/pkcs7-mime; smime-type=enveloped-data"
	case FormatPKCS12:
		if cert == nil {
			return nil, fmt.Errorf("certificate %x is not issued yet: a PKCS#12 carries it", serial)
		}
		d.Password = newPassword()
		if d.Body, err = pkcs12.Modern2023.Encode(key, cert, nil, d.Password); err != nil {
			return nil, fmt.Errorf("encoding the PKCS#12 of certificate %x: %w", serial, err)
		}
		d.ContentType = "application/x-pkcs12"
	}
	e.log.Info("escrowed key packaged", "serial", hex.EncodeToString(serial), "format", to.Format)
	return d, nil
}

// CanEnvelope says whether recipient can receive a CMS delivery: an RSA
// key. github.com/smallstep/pkcs7's Encrypt does key transport to RSA keys
// only (PKCS#1 v1.5 or OAEP); for an ECDSA signing certificate it has no
// key agreement, so such holders take the PKCS#12 form.
func CanEnvelope(recipient *x509.Certificate) error {
	if recipient == nil {
		return fmt.Errorf("%w: CMS delivery needs the holder's signing certificate", ErrRecipient)
	}
	if _, ok := recipient.PublicKey.(*rsa.PublicKey); !ok {
		return fmt.Errorf("%w: certificate %x has a %T key; CMS delivery needs RSA (choose pkcs12)", ErrRecipient, recipient.SerialNumber.Bytes(), recipient.PublicKey)
	}
	return nil
}

// cmsMu guards github.com/smallstep/pkcs7's algorithm variables, which are
// process-wide: the one package-level variable here, because the library's
// are.
var cmsMu sync.Mutex

// envelope encrypts content to recipient with AES-256-CBC and RSAES-OAEP
// with SHA-1 (RFC 8017's default parameters, sound for OAEP). Not SHA-256:
// the library writes the OAEP hash but leaves out maskGenAlgorithm, so a
// reader takes the default MGF1-SHA1 while Go masked with SHA-256, and
// OpenSSL fails with "bad decrypt". The library takes its algorithms from package variables, so
// they are set under a lock for each call; nothing else in certcenter
// encrypts with it.
func (e *Escrow) envelope(content []byte, recipient *x509.Certificate) ([]byte, error) {
	cmsMu.Lock()
	defer cmsMu.Unlock()
	pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES256CBC
	pkcs7.KeyEncryptionAlgorithm = pkcs7.OIDEncryptionAlgorithmRSAESOAEP
	pkcs7.KeyEncryptionHash = crypto.SHA1
	return pkcs7.Encrypt(content, []*x509.Certificate{recipient})
}

// newPassword is 160 random bits in base32: typed once by the holder into
// the token's import tool.
func newPassword() string {
	var b [20]byte
	rand.Read(b[:])
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}
