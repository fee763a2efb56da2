package ocsp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// blobNamespace is the store namespace of pre-signed responses, keyed by the
// certificate serial in lower-case hex.
const blobNamespace = "ocsp"

// recordVersion is the first byte of a stored response; a reader refuses a
// version it does not know rather than serve a misread response.
const recordVersion = 1

// record is a pre-signed response as stored:
//
//	version(1) thisUpdate(8, unix s) nextUpdate(8, unix s)
//	certUpdatedAt(8, unix ns) revoked(1) len(issuer)(1) issuer  DER
//
// certUpdatedAt is the certificate's UpdatedAt when the response was signed,
// so a response older than the certificate's status is recognisable without
// parsing the DER.
type record struct {
	thisUpdate    time.Time
	nextUpdate    time.Time
	certUpdatedAt time.Time
	revoked       bool
	issuer        string
	der           []byte
	// signedBy is the serial of the responder certificate that signed der.
	// It is not stored: save compares it with the current responder, so a
	// response signed by a responder replaced meanwhile is never stored.
	signedBy []byte
}

const recordHeaderLen = 1 + 8 + 8 + 8 + 1 + 1

func (r *record) encode() ([]byte, error) {
	if len(r.issuer) > 255 {
		return nil, fmt.Errorf("issuer name %q is too long for a response record", r.issuer)
	}
	b := make([]byte, recordHeaderLen, recordHeaderLen+len(r.issuer)+len(r.der))
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:], uint64(r.thisUpdate.Unix()))
	binary.BigEndian.PutUint64(b[9:], uint64(r.nextUpdate.Unix()))
	binary.BigEndian.PutUint64(b[17:], uint64(r.certUpdatedAt.UnixNano()))
	if r.revoked {
		b[25] = 1
	}
	b[26] = byte(len(r.issuer))
	b = append(b, r.issuer...)
	return append(b, r.der...), nil
}

// decodeRecord parses a stored record. The DER aliases b: copy b first if it
// is only valid for a while (store iterators).
func decodeRecord(b []byte) (*record, error) {
	if len(b) < recordHeaderLen {
		return nil, errors.New("response record is truncated")
	}
	if b[0] != recordVersion {
		return nil, fmt.Errorf("response record version %d is not supported", b[0])
	}
	n := int(b[26])
	if len(b) < recordHeaderLen+n+1 {
		return nil, errors.New("response record is truncated")
	}
	return &record{
		thisUpdate:    time.Unix(int64(binary.BigEndian.Uint64(b[1:])), 0).UTC(),
		nextUpdate:    time.Unix(int64(binary.BigEndian.Uint64(b[9:])), 0).UTC(),
		certUpdatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(b[17:]))).UTC(),
		revoked:       b[25] == 1,
		issuer:        string(b[recordHeaderLen : recordHeaderLen+n]),
		der:           b[recordHeaderLen+n:],
	}, nil
}
