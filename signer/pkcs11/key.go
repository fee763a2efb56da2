package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/miekg/pkcs11"

	"github.com/certcenter/certcenter/signer"
)

// Key is a private key in the token. It implements crypto.Signer and is safe
// for concurrent use: each signature borrows its own session from the pool.
type Key struct {
	p     *Provider
	label string
	id    []byte
	pub   crypto.PublicKey
	alg   signer.Algorithm
	// ref caches the object handle of the private key for one Provider
	// epoch; a reopen may have invalidated it, so a new epoch looks again.
	ref atomic.Pointer[objRef]
	// peers are the same key in the Provider's other module instances
	// (Options.ModuleInstances); signatures are spread over all of them.
	peers []*Key
}

type objRef struct {
	epoch uint64
	h     pkcs11.ObjectHandle
}

// Public returns the public key.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Algorithm returns the key's type and size.
func (k *Key) Algorithm() signer.Algorithm { return k.alg }

// Label returns the key's CKA_LABEL, its name in the Provider.
func (k *Key) Label() string { return k.label }

// ID returns the key's CKA_ID.
func (k *Key) ID() []byte { return append([]byte(nil), k.id...) }

// Sign signs digest in the token; rand is not used (the token has its own).
// opts selects the hash and, for RSA, the padding: *rsa.PSSOptions means
// PSS, anything else PKCS#1 v1.5. ECDSA signatures come back ASN.1 DER
// encoded, like those of crypto/ecdsa.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(context.Background(), digest, opts)
}

// SignContext is Sign with a context that bounds the wait for a session.
func (k *Key) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	mech, input, err := k.mechanism(digest, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: signing with key %q: %w", k.p.desc, k.label, err)
	}
	sig, err := k.pick().signAlone(ctx, mech, input)
	if err == nil {
		sig, err = k.encode(sig)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: signing with key %q: %w", k.p.desc, k.label, err)
	}
	return sig, nil
}

// instances returns the key as found in each module instance, the primary's
// first.
func (k *Key) instances() []*Key {
	return append([]*Key{k}, k.peers...)
}

// pick returns the instance of the key whose pool has the most free
// sessions, so single signatures spread over all module instances.
func (k *Key) pick() *Key {
	best := k
	for _, kk := range k.peers {
		if cap(kk.p.sem)-len(kk.p.sem) > cap(best.p.sem)-len(best.p.sem) {
			best = kk
		}
	}
	return best
}

// handle returns the private key's object handle for s's epoch.
func (k *Key) handle(s *session) (pkcs11.ObjectHandle, error) {
	if r := k.ref.Load(); r != nil && r.epoch == s.epoch {
		return r.h, nil
	}
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), // not our session copies
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, k.label),
	}
	if len(k.id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, k.id))
	}
	h, err := k.p.findOne(s, tmpl)
	if err != nil {
		return 0, err
	}
	// A token re-created under the same label may hold a different key by
	// the same name: never sign with a key other than the one Public shows.
	pub, _, err := k.p.publicKey(s, h, k.label, k.id)
	if err != nil {
		return 0, err
	}
	if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.pub) {
		return 0, fmt.Errorf("the token holds a different key under this label now: %w", signer.ErrKeyNotFound)
	}
	k.ref.Store(&objRef{epoch: s.epoch, h: h})
	return h, nil
}

// sessionKey returns a copy of the token key h as an object of session s
// (C_CopyObject with CKA_TOKEN false), made once per session and key. A
// token object makes some modules re-validate it against their persistent
// store on every attribute read: SoftHSM2's file store takes a token-wide
// lock and re-reads a file per read, so signing from several sessions
// serialised on it. A session object lives in the module's memory and
// keeps the original's CKA_SENSITIVE and non-extractability (PKCS#11 §4.1.3
// forbids a copy to weaken them); it disappears with the session. If the
// module refuses the copy (CKA_COPYABLE false, or no support), the token
// key is used as before.
func (p *Provider) sessionKey(s *session, h pkcs11.ObjectHandle) pkcs11.ObjectHandle {
	if c, ok := s.copies[h]; ok {
		return c
	}
	if s.copies == nil {
		s.copies = map[pkcs11.ObjectHandle]pkcs11.ObjectHandle{}
	}
	c := h
	_ = p.mod.use(s.gen, func(ctx *pkcs11.Ctx) error {
		cp, err := ctx.CopyObject(s.h, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)})
		if err == nil {
			c = cp
		}
		return nil
	})
	s.copies[h] = c
	return c
}

// sign runs one single-part signature on s.
func (p *Provider) sign(s *session, mech []*pkcs11.Mechanism, h pkcs11.ObjectHandle, input []byte) ([]byte, error) {
	var sig []byte
	err := p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
		if err := c.SignInit(s.h, mech, h); err != nil {
			return fmt.Errorf("C_SignInit: %w", err)
		}
		var err error
		if sig, err = c.Sign(s.h, input); err != nil {
			return fmt.Errorf("C_Sign: %w", err)
		}
		return nil
	})
	return sig, err
}

// mechanism picks the PKCS#11 mechanism and the bytes to hand the token.
// The caller has hashed already, so the mechanisms are the raw ones
// (CKM_ECDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS) rather than the ones that hash
// inside the token.
func (k *Key) mechanism(digest []byte, opts crypto.SignerOpts) (*pkcs11.Mechanism, []byte, error) {
	var h crypto.Hash
	if opts != nil {
		h = opts.HashFunc()
	}
	if h != 0 && len(digest) != h.Size() {
		return nil, nil, fmt.Errorf("digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if len(digest) == 0 {
			return nil, nil, errors.New("empty digest")
		}
		return pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), digest, nil
	case *rsa.PublicKey:
		hashMech, mgf, prefix := rsaHash(h)
		if prefix == nil {
			return nil, nil, fmt.Errorf("hash %v is not supported for RSA (use SHA-256, SHA-384 or SHA-512)", h)
		}
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt := pss.SaltLength
			switch salt {
			case rsa.PSSSaltLengthAuto:
				// As crypto/rsa does: the largest salt that fits.
				salt = (pub.N.BitLen()-1+7)/8 - 2 - h.Size()
			case rsa.PSSSaltLengthEqualsHash:
				salt = h.Size()
			}
			if salt < 0 {
				return nil, nil, fmt.Errorf("PSS salt length %d", pss.SaltLength)
			}
			params := pkcs11.NewPSSParams(hashMech, mgf, uint(salt))
			return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, params), digest, nil
		}
		// CKM_RSA_PKCS pads whatever it is given, so the DigestInfo that
		// names the hash has to be supplied, as crypto/rsa does.
		input := make([]byte, 0, len(prefix)+len(digest))
		input = append(append(input, prefix...), digest...)
		return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), input, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T", k.pub)
}

// rsaHash returns the PKCS#11 hash and MGF1 mechanisms for PSS, and the
// DER DigestInfo prefix for PKCS#1 v1.5 (RFC 8017 §9.2 note 1), or a nil
// prefix for hashes a CA should not use.
func rsaHash(h crypto.Hash) (hashMech, mgf uint, prefix []byte) {
	switch h {
	case crypto.SHA256:
		return pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	case crypto.SHA384:
		return pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384, []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}
	case crypto.SHA512:
		return pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512, []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}
	}
	return 0, 0, nil
}

// ecdsaDER turns the token's r||s (PKCS#11 §2.3.1: two big-endian halves of
// the curve's byte size) into the SEQUENCE { r INTEGER, s INTEGER } that
// crypto/ecdsa produces and x509 expects. It is written out by hand because
// it runs for every OCSP response signed live, where encoding/asn1's
// reflection was a measurable share of the Go-side cost.
func ecdsaDER(raw []byte, size int) ([]byte, error) {
	if len(raw) != 2*size || size == 0 {
		return nil, fmt.Errorf("token returned a %d-byte ECDSA signature, want %d", len(raw), 2*size)
	}
	r, s := derUint(raw[:size]), derUint(raw[size:])
	n := 2 + len(r) + 2 + len(s)
	out := make([]byte, 0, 3+n)
	out = append(out, 0x30)
	if n >= 0x80 { // long form; only curves above P-384 get here
		out = append(out, 0x81)
	}
	out = append(out, byte(n), 0x02, byte(len(r)))
	out = append(out, r...)
	out = append(out, 0x02, byte(len(s)))
	return append(out, s...), nil
}

// derUint returns the content octets of a DER INTEGER holding the unsigned
// big-endian b: minimal length, with a 0x00 in front if the top bit is set
// (else it would read as negative).
func derUint(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	if b[0]&0x80 != 0 {
		return append([]byte{0}, b...)
	}
	return b
}

// idPrefix marks a Signer name that is a hex CKA_ID rather than a label.
const idPrefix = "id:"

// checkName accepts the labels Generate may create.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty key name")
	case len(name) > 128 || !utf8.ValidString(name):
		return errors.New("key name must be valid UTF-8 of at most 128 bytes")
	case strings.HasPrefix(name, idPrefix):
		return fmt.Errorf("key name must not start with %q (Signer reads that as a CKA_ID)", idPrefix)
	}
	return nil
}

// loadKey finds the private key called name and its public half.
func (p *Provider) loadKey(s *session, name string) (*Key, error) {
	// CKA_TOKEN: session copies of a key (sessionKey) must not count as a
	// second key under its label.
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)}
	if hexID, ok := strings.CutPrefix(name, idPrefix); ok {
		id, err := hex.DecodeString(hexID)
		if err != nil || len(id) == 0 {
			return nil, fmt.Errorf("%q is not a hex CKA_ID", hexID)
		}
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	} else {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, name))
	}
	h, err := p.findOne(s, tmpl)
	if err != nil {
		return nil, err
	}
	var attrs []*pkcs11.Attribute
	err = p.mod.use(s.gen, func(c *pkcs11.Ctx) (err error) {
		attrs, err = c.GetAttributeValue(s.h, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading private key attributes: %w", err)
	}
	label, id := string(attrs[0].Value), attrs[1].Value
	pub, alg, err := p.publicKey(s, h, label, id)
	if err != nil {
		return nil, err
	}
	k := &Key{p: p, label: label, id: id, pub: pub, alg: alg}
	k.ref.Store(&objRef{epoch: s.epoch, h: h})
	return k, nil
}

// findOne returns the single object matching tmpl: signer.ErrKeyNotFound if
// there is none, an error if the match is ambiguous.
func (p *Provider) findOne(s *session, tmpl []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	hs, err := p.find(s, tmpl, 2)
	if err == nil && len(hs) == 0 {
		// Private objects are invisible to a session that is not logged
		// in, so an empty answer may mean a lost login (all sessions were
		// closed underneath and this one was opened since), not a missing
		// key. Check the login, and search again: another goroutine may
		// have logged in again between the search and the check, and only
		// a search made while logged in can say the key is missing.
		var info pkcs11.SessionInfo
		err = p.mod.use(s.gen, func(c *pkcs11.Ctx) (err error) {
			info, err = c.GetSessionInfo(s.h)
			return err
		})
		switch {
		case err != nil:
			return 0, fmt.Errorf("checking session after an empty search: %w", err)
		case info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS:
			return 0, fmt.Errorf("searching for the key: %w", pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN))
		}
		hs, err = p.find(s, tmpl, 2)
	}
	switch {
	case err != nil:
		return 0, err
	case len(hs) == 0:
		return 0, signer.ErrKeyNotFound
	case len(hs) > 1:
		return 0, errors.New("more than one private key matches: label and CKA_ID must be unique")
	}
	return hs[0], nil
}

// find returns up to max objects matching tmpl.
func (p *Provider) find(s *session, tmpl []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	var hs []pkcs11.ObjectHandle
	err := p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
		if err := c.FindObjectsInit(s.h, tmpl); err != nil {
			return fmt.Errorf("C_FindObjectsInit: %w", err)
		}
		var err error
		hs, _, err = c.FindObjects(s.h, max)
		// Final must run even after an error, or the session stays in a
		// search and its next FindObjectsInit fails with OPERATION_ACTIVE.
		if ferr := c.FindObjectsFinal(s.h); err == nil && ferr != nil {
			err = fmt.Errorf("C_FindObjectsFinal: %w", ferr)
		} else if err != nil {
			err = fmt.Errorf("C_FindObjects: %w", err)
		}
		return err
	})
	return hs, err
}

// publicKey reads the public half of the private key priv: from the public
// key object with the same CKA_ID (or, without an ID, label), or for RSA from
// the private key object itself, which carries the modulus and exponent.
func (p *Provider) publicKey(s *session, priv pkcs11.ObjectHandle, label string, id []byte) (crypto.PublicKey, signer.Algorithm, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY)}
	if len(id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	} else {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	hs, err := p.find(s, tmpl, 2)
	if err != nil {
		return nil, "", err
	}
	obj := priv
	if len(hs) == 1 {
		obj = hs[0]
	}
	var pub crypto.PublicKey
	err = p.mod.use(s.gen, func(c *pkcs11.Ctx) (err error) {
		pub, err = readPublic(c, s.h, obj)
		return err
	})
	if err != nil {
		if len(hs) != 1 {
			return nil, "", fmt.Errorf("no single public key object with the private key's CKA_ID %x: %w", id, err)
		}
		return nil, "", err
	}
	alg, err := signer.AlgorithmOf(pub)
	if err != nil {
		return nil, "", err
	}
	return pub, alg, nil
}

// readPublic reads an RSA or EC public key from a key object.
func readPublic(c *pkcs11.Ctx, sh pkcs11.SessionHandle, obj pkcs11.ObjectHandle) (crypto.PublicKey, error) {
	a, err := c.GetAttributeValue(sh, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return nil, fmt.Errorf("reading key type: %w", err)
	}
	switch ulong(a[0].Value) {
	case pkcs11.CKK_RSA:
		a, err := c.GetAttributeValue(sh, obj, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading RSA public key: %w", err)
		}
		e := new(big.Int).SetBytes(a[1].Value)
		if len(a[0].Value) == 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, errors.New("RSA public key has no modulus or a bad exponent")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(e.Int64())}, nil
	case pkcs11.CKK_EC:
		a, err := c.GetAttributeValue(sh, obj, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading EC public key: %w", err)
		}
		return parseECPoint(a[0].Value, a[1].Value)
	}
	return nil, fmt.Errorf("key type %#x is neither RSA nor EC", ulong(a[0].Value))
}

var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
)

// parseECPoint decodes CKA_EC_PARAMS (a named-curve OID) and CKA_EC_POINT
// (an OCTET STRING around the uncompressed point, per PKCS#11 v2.40; some
// tokens return the bare point, which is accepted too).
func parseECPoint(params, point []byte) (*ecdsa.PublicKey, error) {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) > 0 {
		return nil, errors.New("CKA_EC_PARAMS is not a named curve")
	}
	var curve elliptic.Curve
	switch {
	case oid.Equal(oidP256):
		curve = elliptic.P256()
	case oid.Equal(oidP384):
		curve = elliptic.P384()
	default:
		return nil, fmt.Errorf("unsupported curve %v", oid)
	}
	// PKCS#11 specifies a DER OCTET STRING around the point; some tokens
	// give the bare point. Tell them apart by length: a bare point 04||X||Y
	// whose X starts with the right byte also parses as an OCTET STRING.
	raw := point
	if size := (curve.Params().BitSize + 7) / 8; len(point) != 1+2*size {
		if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) > 0 {
			raw = point
		}
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, fmt.Errorf("CKA_EC_POINT: %w", err)
	}
	return pub, nil
}

// ulong decodes a CK_ULONG attribute (native byte order and size).
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0) // matches no key type
}

// keyTemplate is what C_GenerateKeyPair needs for one algorithm.
type keyTemplate struct {
	mech      []*pkcs11.Mechanism
	pub, priv []*pkcs11.Attribute
}

func newKeyTemplate(label string, alg signer.Algorithm) (keyTemplate, error) {
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	// A CA key signs and does nothing else: no decryption, no derivation,
	// no unwrapping, and it never leaves the token in any form.
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if curve := alg.Curve(); curve != nil {
		oid := oidP256
		if curve == elliptic.P384() {
			oid = oidP384
		}
		params, err := asn1.Marshal(oid)
		if err != nil {
			return keyTemplate{}, err
		}
		return keyTemplate{
			mech: []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)},
			pub: append(pub,
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
				pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params)),
			priv: append(priv,
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
				pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false)),
		}, nil
	}
	if bits := alg.RSABits(); bits > 0 {
		return keyTemplate{
			mech: []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
			pub: append(pub,
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
				pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
				pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
				pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, false)),
			priv: append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA)),
		}, nil
	}
	return keyTemplate{}, fmt.Errorf("unknown key algorithm %q", alg)
}

// generate creates the key pair on s. Before C_GenerateKeyPair succeeds an
// error may be retried on a reopened token; after, never, or the retry
// would find its own key and report ErrKeyExists.
func (p *Provider) generate(s *session, label string, alg signer.Algorithm, t keyTemplate) (*Key, error) {
	hs, err := p.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}, 1)
	if err != nil {
		return nil, err
	}
	if len(hs) > 0 {
		return nil, fmt.Errorf("the token has an object labelled %q: %w", label, signer.ErrKeyExists)
	}
	var pubH, privH pkcs11.ObjectHandle
	err = p.mod.use(s.gen, func(c *pkcs11.Ctx) (err error) {
		pubH, privH, err = c.GenerateKeyPair(s.h, t.mech, t.pub, t.priv)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("C_GenerateKeyPair: %w", err)
	}
	var pub crypto.PublicKey
	var id []byte
	err = p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
		if pub, err = readPublic(c, s.h, pubH); err != nil {
			// Do not leave a half-known key behind under the label, where
			// it would block the next Generate.
			_ = c.DestroyObject(s.h, privH)
			_ = c.DestroyObject(s.h, pubH)
			return err
		}
		id = subjectKeyID(pub)
		ida := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, id)}
		if err := c.SetAttributeValue(s.h, privH, ida); err != nil {
			// Some tokens fix CKA_ID at creation. The label still names
			// the key; only the convenience of matching the SKI is lost.
			p.log.Warn("cannot set CKA_ID of new key", "key", label, "error", err)
			id = nil
			return nil
		}
		if err := c.SetAttributeValue(s.h, pubH, ida); err != nil {
			p.log.Warn("cannot set CKA_ID of new public key", "key", label, "error", err)
		}
		return nil
	})
	if err != nil {
		return nil, final{fmt.Errorf("reading the new public key: %w", err)}
	}
	if _, err := signer.AlgorithmOf(pub); err != nil {
		return nil, final{err}
	}
	k := &Key{p: p, label: label, id: id, pub: pub, alg: alg}
	k.ref.Store(&objRef{epoch: s.epoch, h: privH})
	return k, nil
}

// subjectKeyID is the SHA-1 of the subjectPublicKey bits (RFC 5280
// §4.2.1.2 method 1), the same value ca writes as the certificate's SKI.
func subjectKeyID(pub crypto.PublicKey) []byte {
	var bits []byte
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		bits, _ = k.Bytes()
	case *rsa.PublicKey:
		bits = x509.MarshalPKCS1PublicKey(k)
	}
	sum := sha1.Sum(bits)
	return sum[:]
}
