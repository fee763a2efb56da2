package ocsp

import (
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ResponseStatus is an OCSPResponseStatus (RFC 6960 §4.2.1).
type ResponseStatus int

// The response statuses; 4 is unused.
const (
	StatusSuccessful       ResponseStatus = 0
	StatusMalformedRequest ResponseStatus = 1
	StatusInternalError    ResponseStatus = 2
	StatusTryLater         ResponseStatus = 3
	StatusSigRequired      ResponseStatus = 5
	StatusUnauthorized     ResponseStatus = 6
)

// errorResponse is the whole DER of an unsuccessful OCSPResponse: a SEQUENCE
// holding only the ENUMERATED status.
func errorResponse(s ResponseStatus) []byte {
	return []byte{0x30, 0x03, 0x0a, 0x01, byte(s)}
}

var oidBasic = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01} // id-pkix-ocsp-basic

// responderID encodes the ResponderID CHOICE: byName [1] EXPLICIT Name, or
// byKey [2] EXPLICIT KeyHash (SHA-1 of the responder's subjectPublicKey bits).
func responderID(cert *x509.Certificate, byKey bool) ([]byte, error) {
	var b cryptobyte.Builder
	if byKey {
		bits, err := publicKeyBits(cert)
		if err != nil {
			return nil, err
		}
		h := sha1.Sum(bits)
		b.AddASN1(tagExplicit2, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(h[:])
		})
	} else {
		b.AddASN1(tagExplicit1, func(b *cryptobyte.Builder) { b.AddBytes(cert.RawSubject) })
	}
	return b.Bytes()
}

// publicKeyBits returns the subjectPublicKey BIT STRING contents of a
// certificate: the input of the issuerKeyHash and of the byKey ResponderID.
func publicKeyBits(cert *x509.Certificate) ([]byte, error) {
	spki := cryptobyte.String(cert.RawSubjectPublicKeyInfo)
	var inner cryptobyte.String
	var bits []byte
	if !spki.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.SkipASN1(cbasn1.SEQUENCE) || !inner.ReadASN1BitStringAsBytes(&bits) {
		return nil, fmt.Errorf("parsing public key of %s", cert.Subject)
	}
	return bits, nil
}

// single is one SingleResponse to encode.
type single struct {
	certID     []byte // whole CertID DER
	revoked    bool
	revokedAt  time.Time
	reason     int // CRLReason; 0 (unspecified) is omitted
	thisUpdate time.Time
	nextUpdate time.Time
}

// responder is what signs: the delegated responder certificate and key of
// one issuer.
type responder struct {
	cert   *x509.Certificate
	signer crypto.Signer
	id     []byte // encoded ResponderID
	sigAlg []byte
	hash   crypto.Hash
}

// sign builds and signs a successful OCSPResponse with a BasicOCSPResponse
// holding one SingleResponse per element of singles, the responder
// certificate, and, if nonce is not nil, a nonce extension whose extnValue
// contents are nonce.
func (r *responder) sign(producedAt time.Time, singles []single, nonce []byte) ([]byte, error) {
	tbsDER, err := r.tbs(producedAt, singles, nonce)
	if err != nil {
		return nil, err
	}
	return r.signTBS(tbsDER)
}

// signTBS signs encoded ResponseData and wraps it into the OCSPResponse.
func (r *responder) signTBS(tbsDER []byte) ([]byte, error) {
	sig, err := r.signer.Sign(rand.Reader, r.digest(tbsDER), r.hash)
	if err != nil {
		return nil, fmt.Errorf("signing ResponseData: %w", err)
	}
	return r.assemble(tbsDER, sig)
}

// tbs encodes the ResponseData that sign signs.
func (r *responder) tbs(producedAt time.Time, singles []single, nonce []byte) ([]byte, error) {
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		// version v1 is the DEFAULT and so omitted (DER).
		b.AddBytes(r.id)
		b.AddASN1GeneralizedTime(producedAt.UTC())
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for i := range singles {
				addSingle(b, &singles[i])
			}
		})
		if nonce != nil {
			b.AddASN1(tagExplicit1, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(oidNonce) })
						b.AddASN1OctetString(nonce)
					})
				})
			})
		}
	})
	tbsDER, err := tbs.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding ResponseData: %w", err)
	}
	return tbsDER, nil
}

// digest hashes ResponseData for the responder's signature algorithm.
func (r *responder) digest(tbsDER []byte) []byte {
	h := r.hash.New()
	h.Write(tbsDER)
	return h.Sum(nil)
}

// assemble wraps signed ResponseData into the OCSPResponse.
func (r *responder) assemble(tbsDER, sig []byte) ([]byte, error) {
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(int64(StatusSuccessful))
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(oidBasic) })
				b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddBytes(tbsDER)
						b.AddBytes(r.sigAlg)
						b.AddASN1BitString(sig)
						b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(r.cert.Raw) })
						})
					})
				})
			})
		})
	})
	der, err := out.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding OCSPResponse: %w", err)
	}
	return der, nil
}

var (
	tagGood    = cbasn1.Tag(0).ContextSpecific()               // [0] IMPLICIT NULL
	tagRevoked = cbasn1.Tag(1).Constructed().ContextSpecific() // [1] IMPLICIT RevokedInfo
)

func addSingle(b *cryptobyte.Builder, s *single) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(s.certID)
		if s.revoked {
			b.AddASN1(tagRevoked, func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(s.revokedAt.UTC().Truncate(time.Second))
				if s.reason != 0 {
					b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(s.reason)) })
				}
			})
		} else {
			b.AddASN1(tagGood, func(*cryptobyte.Builder) {})
		}
		b.AddASN1GeneralizedTime(s.thisUpdate.UTC())
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) { b.AddASN1GeneralizedTime(s.nextUpdate.UTC()) })
	})
}

// encodeCertID builds the CertID we put into pre-signed responses: the hash
// algorithm with NULL parameters (as OpenSSL and Go send it), the issuer's
// name and key hashes, and the serial as a positive INTEGER.
func encodeCertID(h HashAlg, nameHash, keyHash, serial []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(hashOIDs[h]) })
			b.AddASN1NULL()
		})
		b.AddASN1OctetString(nameHash)
		b.AddASN1OctetString(keyHash)
		b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) {
			if len(serial) > 0 && serial[0]&0x80 != 0 {
				b.AddUint8(0)
			}
			b.AddBytes(serial)
		})
	})
	return b.Bytes()
}
