package ocsp

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrMalformed marks a request that is not a well-formed OCSPRequest; it is
// answered with malformedRequest.
var ErrMalformed = errors.New("malformed OCSP request")

// MaxCertIDs bounds the CertIDs of one request, so a request cannot make the
// responder sign a response of unbounded size.
const MaxCertIDs = 32

// maxSerialLen is the longest serial we look up: RFC 5280 allows 20 octets,
// plus one leading zero octet that DER needs for a value with its top bit set
// (and one more for sloppy encoders). Longer serials are never ours.
const maxSerialLen = 22

// HashAlg is the hash algorithm of a CertID.
type HashAlg uint8

// The CertID hash algorithms we answer. RFC 5019 clients use SHA-1; RFC 9919
// (and OpenSSL with -sha256) allow SHA-2.
const (
	HashUnknown HashAlg = iota
	SHA1
	SHA256
	SHA384
	SHA512
	numHashes
)

// DER contents of the hash algorithm OIDs, compared as bytes so parsing does
// not allocate an asn1.ObjectIdentifier.
var hashOIDs = [numHashes][]byte{
	SHA1:   {0x2b, 0x0e, 0x03, 0x02, 0x1a},                         // 1.3.14.3.2.26
	SHA256: {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}, // 2.16.840.1.101.3.4.2.1
	SHA384: {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02}, // 2.16.840.1.101.3.4.2.2
	SHA512: {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03}, // 2.16.840.1.101.3.4.2.3
}

// Crypto returns the crypto.Hash of a CertID algorithm.
func (h HashAlg) Crypto() crypto.Hash {
	switch h {
	case SHA1:
		return crypto.SHA1
	case SHA256:
		return crypto.SHA256
	case SHA384:
		return crypto.SHA384
	case SHA512:
		return crypto.SHA512
	}
	return 0
}

func (h HashAlg) String() string {
	switch h {
	case SHA1:
		return "sha1"
	case SHA256:
		return "sha256"
	case SHA384:
		return "sha384"
	case SHA512:
		return "sha512"
	}
	return "unknown"
}

// oidNonce is id-pkix-ocsp-nonce (1.3.6.1.5.5.7.48.1.2), DER contents.
var oidNonce = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02}

// CertID identifies one certificate in a request. Its slices point into the
// request bytes: they are valid only as long as those are.
type CertID struct {
	Hash     HashAlg
	NameHash []byte
	KeyHash  []byte
	// Serial is the INTEGER's content octets as sent (possibly with a leading
	// zero octet); see LookupSerial.
	Serial []byte
	// Raw is the whole CertID element, echoed in live-signed responses so the
	// client finds exactly what it asked for.
	Raw []byte
}

// LookupSerial is the serial in the form the store keys it: the big-endian
// magnitude without leading zero octets.
func (id *CertID) LookupSerial() []byte {
	s := id.Serial
	for len(s) > 1 && s[0] == 0 {
		s = s[1:]
	}
	return s
}

// Request is a parsed OCSPRequest. Parse into a reused Request to avoid
// allocating: CertIDs uses inline storage for the usual single CertID.
type Request struct {
	CertIDs []CertID
	// HasNonce is set when the request carries an id-pkix-ocsp-nonce
	// extension; Nonce is that extension's extnValue contents, echoed as is.
	HasNonce bool
	Nonce    []byte

	inline [1]CertID
}

// Reset clears r for reuse.
func (r *Request) Reset() {
	r.CertIDs = r.inline[:0]
	r.HasNonce = false
	r.Nonce = nil
}

var (
	tagExplicit0 = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagExplicit1 = cbasn1.Tag(1).Constructed().ContextSpecific()
	tagExplicit2 = cbasn1.Tag(2).Constructed().ContextSpecific()
)

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// ParseRequest parses a DER OCSPRequest (RFC 6960 §4.1.1) into r. The
// request's optional signature is accepted and not checked: RFC 5019
// responders do not require signed requests.
func ParseRequest(der []byte, r *Request) error {
	r.Reset()
	in := cryptobyte.String(der)
	var req, tbs cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !in.Empty() {
		return malformed("not a single DER SEQUENCE")
	}
	if !req.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return malformed("no tbsRequest")
	}
	if !req.SkipOptionalASN1(tagExplicit0) || !req.Empty() {
		return malformed("trailing data after tbsRequest")
	}
	if tbs.PeekASN1Tag(tagExplicit0) {
		var v cryptobyte.String
		var ver int64
		if !tbs.ReadASN1(&v, tagExplicit0) || !v.ReadASN1Int64WithTag(&ver, cbasn1.INTEGER) || !v.Empty() {
			return malformed("bad version")
		}
		if ver != 0 {
			return malformed("version is not v1")
		}
	}
	if !tbs.SkipOptionalASN1(tagExplicit1) {
		return malformed("bad requestorName")
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return malformed("no requestList")
	}
	for !list.Empty() {
		if len(r.CertIDs) == MaxCertIDs {
			return malformed(fmt.Sprintf("more than %d CertIDs", MaxCertIDs))
		}
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return malformed("bad Request")
		}
		var id CertID
		if err := parseCertID(&one, &id); err != nil {
			return err
		}
		if !one.SkipOptionalASN1(tagExplicit0) || !one.Empty() {
			return malformed("bad singleRequestExtensions")
		}
		r.CertIDs = append(r.CertIDs, id)
	}
	if len(r.CertIDs) == 0 {
		return malformed("empty requestList")
	}
	if tbs.PeekASN1Tag(tagExplicit2) {
		var wrap, exts cryptobyte.String
		if !tbs.ReadASN1(&wrap, tagExplicit2) || !wrap.ReadASN1(&exts, cbasn1.SEQUENCE) || !wrap.Empty() {
			return malformed("bad requestExtensions")
		}
		if err := parseExtensions(exts, r); err != nil {
			return err
		}
	}
	if !tbs.Empty() {
		return malformed("trailing data in tbsRequest")
	}
	return nil
}

func parseCertID(s *cryptobyte.String, id *CertID) error {
	var raw cryptobyte.String
	if !s.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
		return malformed("bad CertID")
	}
	id.Raw = raw
	var cid, alg, oid, nameHash, keyHash, serial cryptobyte.String
	if !raw.ReadASN1(&cid, cbasn1.SEQUENCE) || !cid.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return malformed("bad CertID hashAlgorithm")
	}
	// Parameters are absent or NULL; both are seen in the wild.
	if !alg.Empty() {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !alg.Empty() {
			return malformed("bad hashAlgorithm parameters")
		}
	}
	id.Hash = HashUnknown
	for h := SHA1; h < numHashes; h++ {
		if bytes.Equal(oid, hashOIDs[h]) {
			id.Hash = h
			break
		}
	}
	if !cid.ReadASN1(&nameHash, cbasn1.OCTET_STRING) || !cid.ReadASN1(&keyHash, cbasn1.OCTET_STRING) {
		return malformed("bad issuer hashes")
	}
	// An unknown hash algorithm is well-formed; the responder answers
	// unauthorized because it cannot match the issuer.
	if id.Hash != HashUnknown && (len(nameHash) != id.Hash.Crypto().Size() || len(keyHash) != id.Hash.Crypto().Size()) {
		return malformed("issuer hash length does not match its algorithm")
	}
	if !cid.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) == 0 || !cid.Empty() {
		return malformed("bad serialNumber")
	}
	id.NameHash, id.KeyHash, id.Serial = nameHash, keyHash, serial
	return nil
}

func parseExtensions(exts cryptobyte.String, r *Request) error {
	for !exts.Empty() {
		var ext, oid, val cryptobyte.String
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) {
			return malformed("bad extension")
		}
		critical := false
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) {
			if !ext.ReadASN1Boolean(&critical) {
				return malformed("bad extension criticality")
			}
		}
		if !ext.ReadASN1(&val, cbasn1.OCTET_STRING) || !ext.Empty() {
			return malformed("bad extension value")
		}
		switch {
		case bytes.Equal(oid, oidNonce):
			if r.HasNonce {
				return malformed("two nonces")
			}
			r.HasNonce, r.Nonce = true, val
		case critical:
			// RFC 5280 §4.2: an unrecognised critical extension must not be
			// silently ignored.
			return malformed("unsupported critical extension")
		}
	}
	return nil
}

// nonceValue returns the RFC 8954 nonce octets inside an extnValue, accepting
// the pre-RFC 8954 form of raw octets too.
func nonceValue(extnValue []byte) []byte {
	s := cryptobyte.String(extnValue)
	var v cryptobyte.String
	if s.ReadASN1(&v, cbasn1.OCTET_STRING) && s.Empty() {
		return v
	}
	return extnValue
}
