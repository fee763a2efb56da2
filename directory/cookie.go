package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// pageState is what a paged search carries from one page to the next: where
// to resume and how many entries the earlier pages returned (the client's
// size limit counts them).
type pageState struct {
	cur  cursor
	sent int64
}

// cookieJar seals and opens paged results cookies (RFC 2696). The server
// keeps no state between pages, so the cookie holds the state, and a MAC
// binds it to the search that made it: the bound identity, base, scope,
// size limit, typesOnly, filter and attributes, under a key made at start.
// A client cannot forge a position or a count, reuse a cookie for another
// search or identity, or bring one from another process (or from before a
// restart).
//
// Layout: version 1, uvarint sent, 's' uvarint static-index | 'u' ID,
// then HMAC-SHA256 of the search and all of the above.
type cookieJar struct {
	key []byte
}

const cookieVersion = 1

func newCookieJar() (*cookieJar, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("making the paging cookie key: %w", err)
	}
	return &cookieJar{key: key}, nil
}

// mac is the MAC of payload for the search req made by identity.
func (j *cookieJar) mac(req *searchRequest, identity string, payload []byte) []byte {
	m := hmac.New(sha256.New, j.key)
	field := func(h hash.Hash, b []byte) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	var fixed [3 * binary.MaxVarintLen64]byte
	k := binary.PutUvarint(fixed[:], uint64(req.scope))
	k += binary.PutUvarint(fixed[k:], uint64(req.sizeLimit))
	if req.typesOnly {
		k += binary.PutUvarint(fixed[k:], 1)
	} else {
		k += binary.PutUvarint(fixed[k:], 0)
	}
	field(m, []byte(identity))
	field(m, []byte(req.base))
	field(m, fixed[:k])
	field(m, req.filterBER)
	for _, a := range req.attrs {
		field(m, []byte(a))
	}
	field(m, payload)
	return m.Sum(nil)
}

// seal makes the cookie that resumes the search at p.
func (j *cookieJar) seal(req *searchRequest, identity string, p pageState) []byte {
	b := []byte{cookieVersion}
	b = binary.AppendUvarint(b, uint64(p.sent))
	if p.cur.subs {
		b = append(b, 'u')
		b = append(b, p.cur.after...)
	} else {
		b = append(b, 's')
		b = binary.AppendUvarint(b, uint64(p.cur.static))
	}
	return append(b, j.mac(req, identity, b)...)
}

var errBadCookie = errors.New("paged results cookie is invalid")

// open checks and decodes a cookie; an empty one starts the search. As in
// slapd, a cookie that cannot be one is a protocolError and one that is not
// this search's (or was altered) is unwillingToPerform.
func (j *cookieJar) open(req *searchRequest, identity string) (pageState, result) {
	b := req.cookie
	if len(b) == 0 {
		return pageState{}, result{}
	}
	if len(b) < 3+sha256.Size || b[0] != cookieVersion {
		return pageState{}, result{code: resultProtocolError, diag: errBadCookie.Error()}
	}
	payload, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if !hmac.Equal(sum, j.mac(req, identity, payload)) {
		return pageState{}, result{code: resultUnwillingToPerform, diag: "paged results cookie is invalid or old: it belongs to another search"}
	}
	p, err := decodePageState(payload[1:])
	if err != nil {
		// sealed by this process, so never: but do not trust it
		return pageState{}, result{code: resultProtocolError, diag: err.Error()}
	}
	return p, result{}
}

func decodePageState(b []byte) (pageState, error) {
	sent, n := binary.Uvarint(b)
	if n <= 0 || n >= len(b) || sent > 1<<62 {
		return pageState{}, errBadCookie
	}
	p := pageState{sent: int64(sent)}
	switch rest := b[n+1:]; b[n] {
	case 's':
		idx, k := binary.Uvarint(rest)
		if k <= 0 || k != len(rest) || idx > 1<<31 {
			return pageState{}, errBadCookie
		}
		p.cur.static = int(idx)
	case 'u':
		p.cur = cursor{subs: true, after: string(rest)}
	default:
		return pageState{}, errBadCookie
	}
	return p, nil
}
