package store

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// codecVersion is the first byte of every record value. A reader that meets a
// version it does not know refuses the record instead of misreading it.
const codecVersion byte = 1

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{codecVersion}, b...), nil
}

func decode(b []byte, v any) error {
	if len(b) == 0 {
		return errors.New("empty record")
	}
	if b[0] != codecVersion {
		return fmt.Errorf("record encoding version %d is not supported", b[0])
	}
	return json.Unmarshal(b[1:], v)
}

// CA is an issuing authority.
type CA struct {
	// Name is the short name used in URLs (/crl/{name}.crl) and key labels.
	Name    string `json:"name"`
	CertDER []byte `json:"cert"`
	// KeyRef names the CA key in the signer.
	KeyRef string `json:"key_ref"`
	// OCSPCertDER is the delegated OCSP signing certificate and OCSPKeyRef its key.
	OCSPCertDER []byte    `json:"ocsp_cert,omitempty"`
	OCSPKeyRef  string    `json:"ocsp_key_ref,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// CertStatus is a certificate's revocation status. Expiry is derived from NotAfter.
type CertStatus uint8

const (
	StatusValid   CertStatus = 0
	StatusRevoked CertStatus = 1
)

func (s CertStatus) String() string {
	if s == StatusRevoked {
		return "revoked"
	}
	return "valid"
}

// Cert is an issued certificate.
type Cert struct {
	Serial       []byte     `json:"serial"`
	Issuer       string     `json:"issuer"`
	DER          []byte     `json:"der"`
	Status       CertStatus `json:"status"`
	RevokedAt    time.Time  `json:"revoked_at,omitzero"`
	Reason       int        `json:"reason,omitempty"`
	Subject      string     `json:"subject"`
	CommonName   string     `json:"cn"`
	SubscriberID string     `json:"subscriber,omitempty"`
	Profile      string     `json:"profile"`
	NotBefore    time.Time  `json:"not_before"`
	NotAfter     time.Time  `json:"not_after"`
	IssuedAt     time.Time  `json:"issued_at"`
	// UpdatedAt changes with every status change, so a stored OCSP response or
	// CRL older than it is known to be stale.
	UpdatedAt time.Time `json:"updated_at"`
}

// SerialHex is the serial in lower-case hex, the form used in APIs and logs.
func (c *Cert) SerialHex() string { return hex.EncodeToString(c.Serial) }

// Subscriber is a person or server that holds certificates.
type Subscriber struct {
	ID           string    `json:"id"`
	CommonName   string    `json:"cn"`
	Surname      string    `json:"sn,omitempty"`
	Email        string    `json:"mail,omitempty"`
	UID          string    `json:"uid,omitempty"`
	Organization string    `json:"o,omitempty"`
	OrgUnit      string    `json:"ou,omitempty"`
	SerialNumber string    `json:"serial_number,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// Staff is an operator of the CA, authenticated by client certificate.
type Staff struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
	// CertSerials are the client certificates that authenticate this person.
	CertSerials [][]byte  `json:"cert_serials"`
	CreatedAt   time.Time `json:"created_at"`
}

var (
	pCA        = []byte("ca\x00")
	pCert      = []byte("cert\x00")
	pSub       = []byte("sub\x00")
	pStaff     = []byte("staff\x00")
	pIdxSubj   = []byte("i\x00subj\x00")
	pIdxCN     = []byte("i\x00cn\x00")
	pIdxSub    = []byte("i\x00sub\x00")
	pIdxExp    = []byte("i\x00exp\x00")
	pIdxRev    = []byte("i\x00rev\x00")
	pIdxRevT   = []byte("i\x00revt\x00")
	pIdxSubCN  = []byte("i\x00subcn\x00")
	pIdxStaffC = []byte("i\x00staffcert\x00")
	pBlob      = []byte("blob\x00")
)

func key(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func cat(prefix []byte, parts ...[]byte) []byte {
	return append(append([]byte{}, prefix...), key(parts...)...)
}

// fold lower-cases a name for case-insensitive index lookups and strips the
// NUL that separates key parts.
func fold(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ToLower(s), "\x00", ""))
}

func be64(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.Unix()))
	return b[:]
}

// ---- CAs ----

// PutCA writes a CA record.
func (tx *Tx) PutCA(ca *CA) error {
	v, err := encode(ca)
	if err != nil {
		return fmt.Errorf("encoding CA %s: %w", ca.Name, err)
	}
	if err := tx.set(cat(pCA, []byte(ca.Name)), v); err != nil {
		return fmt.Errorf("writing CA %s: %w", ca.Name, err)
	}
	tx.changed(KindCA, ca.Name)
	return nil
}

// CA reads a CA record.
func (tx *Tx) CA(name string) (*CA, error) {
	b, err := tx.get(cat(pCA, []byte(name)))
	if err != nil {
		return nil, fmt.Errorf("reading CA %s: %w", name, err)
	}
	var ca CA
	if err := decode(b, &ca); err != nil {
		return nil, fmt.Errorf("decoding CA %s: %w", name, err)
	}
	return &ca, nil
}

// CAs lists every CA.
func (tx *Tx) CAs() ([]*CA, error) {
	var out []*CA
	err := tx.scan(pCA, nil, true, func(k, v []byte) error {
		var ca CA
		if err := decode(v, &ca); err != nil {
			return fmt.Errorf("decoding CA %q: %w", k[len(pCA):], err)
		}
		out = append(out, &ca)
		return nil
	})
	return out, err
}

// ---- certificates ----

// InsertCert writes a new certificate with its indexes. It fails if the
// serial exists.
func (tx *Tx) InsertCert(c *Cert) error {
	k := cat(pCert, c.Serial)
	if ok, err := tx.exists(k); err != nil {
		return fmt.Errorf("checking serial %x: %w", c.Serial, err)
	} else if ok {
		return fmt.Errorf("serial %x already exists", c.Serial)
	}
	if err := tx.putCert(c); err != nil {
		return err
	}
	idx := [][]byte{
		cat(pIdxSubj, fold(c.Subject), c.Serial),
		cat(pIdxExp, be64(c.NotAfter), c.Serial),
	}
	if c.CommonName != "" {
		idx = append(idx, cat(pIdxCN, fold(c.CommonName), c.Serial))
	}
	if c.SubscriberID != "" {
		idx = append(idx, cat(pIdxSub, []byte(c.SubscriberID), c.Serial))
	}
	for _, k := range idx {
		if err := tx.set(k, nil); err != nil {
			return fmt.Errorf("writing index for %x: %w", c.Serial, err)
		}
	}
	if c.Status == StatusRevoked {
		return tx.indexRevocation(c)
	}
	return nil
}

func (tx *Tx) putCert(c *Cert) error {
	v, err := encode(c)
	if err != nil {
		return fmt.Errorf("encoding certificate %x: %w", c.Serial, err)
	}
	if err := tx.set(cat(pCert, c.Serial), v); err != nil {
		return fmt.Errorf("writing certificate %x: %w", c.Serial, err)
	}
	serial := hex.EncodeToString(c.Serial)
	// Every write of a certificate changes what its OCSP response must say,
	// unless the writer stores that response in this transaction too.
	if !tx.s.ocspPresigned.Load() {
		if err := tx.MarkDirty(DirtyOCSP, serial); err != nil {
			return err
		}
	}
	tx.changed(KindCert, serial)
	return nil
}

func revValue(c *Cert) []byte {
	v := make([]byte, 9)
	binary.BigEndian.PutUint64(v, uint64(c.RevokedAt.UnixNano()))
	v[8] = byte(c.Reason)
	return v
}

func (tx *Tx) indexRevocation(c *Cert) error {
	if err := tx.set(cat(pIdxRev, []byte(c.Issuer), c.Serial), revValue(c)); err != nil {
		return fmt.Errorf("writing revocation index for %x: %w", c.Serial, err)
	}
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(c.RevokedAt.UnixNano()))
	k := append(cat(pIdxRevT, []byte(c.Issuer), nil), append(t[:], c.Serial...)...)
	if err := tx.set(k, []byte{byte(c.Reason)}); err != nil {
		return fmt.Errorf("writing revocation time index for %x: %w", c.Serial, err)
	}
	for _, kind := range []string{DirtyCRL, DirtyCRLDelta} {
		if err := tx.MarkDirty(kind, c.Issuer); err != nil {
			return err
		}
	}
	return nil
}

// Cert reads a certificate by serial.
func (tx *Tx) Cert(serial []byte) (*Cert, error) {
	b, err := tx.get(cat(pCert, serial))
	if err != nil {
		return nil, fmt.Errorf("reading certificate %x: %w", serial, err)
	}
	var c Cert
	if err := decode(b, &c); err != nil {
		return nil, fmt.Errorf("decoding certificate %x: %w", serial, err)
	}
	return &c, nil
}

// ErrAlreadyRevoked is returned by RevokeCert for a certificate revoked before.
var ErrAlreadyRevoked = errors.New("certificate is already revoked")

// nextUpdate is the UpdatedAt of a record changed at at whose UpdatedAt
// was prev: at, or just after prev when the clock has not moved past it (a
// step back, or two changes within its resolution). Readers such as the
// OCSP responder tell versions of a certificate apart by UpdatedAt alone.
func nextUpdate(prev, at time.Time) time.Time {
	if at.After(prev) {
		return at.UTC()
	}
	return prev.Add(time.Nanosecond).UTC()
}

// RevokeCert marks a certificate revoked. Revoking a certificate on hold
// (reason certificateHold) again with another reason is allowed.
func (tx *Tx) RevokeCert(serial []byte, at time.Time, reason int) (*Cert, error) {
	c, err := tx.Cert(serial)
	if err != nil {
		return nil, err
	}
	if c.Status == StatusRevoked && c.Reason != 6 {
		return c, fmt.Errorf("certificate %x: %w", serial, ErrAlreadyRevoked)
	}
	if c.Status == StatusRevoked {
		var t [8]byte
		binary.BigEndian.PutUint64(t[:], uint64(c.RevokedAt.UnixNano()))
		if err := tx.txn.Delete(append(cat(pIdxRevT, []byte(c.Issuer), nil), append(t[:], c.Serial...)...)); err != nil {
			return nil, err
		}
	}
	c.Status = StatusRevoked
	c.RevokedAt = at.UTC()
	c.Reason = reason
	c.UpdatedAt = nextUpdate(c.UpdatedAt, at)
	if err := tx.putCert(c); err != nil {
		return nil, err
	}
	if err := tx.indexRevocation(c); err != nil {
		return nil, err
	}
	return c, nil
}

// CertPage lists certificates in serial order after the given serial (nil for
// the start), at most limit of them, and returns the serial to continue from
// (nil at the end).
func (tx *Tx) CertPage(after []byte, limit int) ([]*Cert, []byte, error) {
	var out []*Cert
	var next []byte
	start := pCert
	if after != nil {
		start = append(cat(pCert, after), 0)
	}
	err := tx.scan(pCert, start, true, func(k, v []byte) error {
		if len(out) == limit {
			next = append([]byte{}, out[len(out)-1].Serial...)
			return errStop
		}
		var c Cert
		if err := decode(v, &c); err != nil {
			return fmt.Errorf("decoding certificate %x: %w", k[len(pCert):], err)
		}
		out = append(out, &c)
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, next, err
}

// EachCert streams every certificate in serial order. Return a non-nil error
// from fn to stop; it is returned as is.
func (tx *Tx) EachCert(fn func(*Cert) error) error {
	return tx.scan(pCert, nil, true, func(k, v []byte) error {
		var c Cert
		if err := decode(v, &c); err != nil {
			return fmt.Errorf("decoding certificate %x: %w", k[len(pCert):], err)
		}
		return fn(&c)
	})
}

func (tx *Tx) serialsUnder(prefix []byte, fn func(serial []byte) error) error {
	return tx.scan(prefix, nil, false, func(k, _ []byte) error {
		return fn(append([]byte{}, k[len(prefix):]...))
	})
}

func (tx *Tx) certsUnder(prefix []byte, fn func(*Cert) error) error {
	return tx.serialsUnder(prefix, func(serial []byte) error {
		c, err := tx.Cert(serial)
		if err != nil {
			return err
		}
		return fn(c)
	})
}

// CertsBySubject streams the certificates whose subject DN equals subject
// (case-insensitive).
func (tx *Tx) CertsBySubject(subject string, fn func(*Cert) error) error {
	return tx.certsUnder(cat(pIdxSubj, fold(subject), nil), fn)
}

// CertsByCommonName streams the certificates whose subject CN equals cn
// (case-insensitive).
func (tx *Tx) CertsByCommonName(cn string, fn func(*Cert) error) error {
	return tx.certsUnder(cat(pIdxCN, fold(cn), nil), fn)
}

// CertsBySubscriber streams a subscriber's certificates.
func (tx *Tx) CertsBySubscriber(id string, fn func(*Cert) error) error {
	return tx.certsUnder(cat(pIdxSub, []byte(id), nil), fn)
}

// CertsExpiring streams certificates with notAfter in [from, to), in expiry order.
func (tx *Tx) CertsExpiring(from, to time.Time, fn func(*Cert) error) error {
	if !from.Before(to) {
		return nil
	}
	// The index holds whole seconds since 1970: a bound before 1970 (the
	// zero time of an open window) is 0, not a negative number cast to a
	// huge uint64, and a bound within a second is rounded up, so that the
	// window is [from, to) exactly.
	end := ceilSecond(to)
	err := tx.scan(pIdxExp, append(append([]byte{}, pIdxExp...), ceilSecond(from)...), false, func(k, _ []byte) error {
		rest := k[len(pIdxExp):]
		if string(rest[:8]) >= string(end) {
			return errStop
		}
		c, err := tx.Cert(rest[9:])
		if err != nil {
			return err
		}
		if c.NotAfter.Before(from) || !c.NotAfter.Before(to) {
			return nil
		}
		return fn(c)
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// ceilSecond is be64 of the first whole second at or after t, 0 before 1970.
func ceilSecond(t time.Time) []byte {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(max(s, 0)))
	return b[:]
}

// Revocation is one entry of a CRL.
type Revocation struct {
	Serial    []byte
	RevokedAt time.Time
	Reason    int
}

// EachRevoked streams the revoked certificates of an issuer in serial order
// without reading the certificate records. The Revocation is reused between
// calls; copy what you keep.
func (tx *Tx) EachRevoked(issuer string, fn func(*Revocation) error) error {
	prefix := cat(pIdxRev, []byte(issuer), nil)
	var r Revocation
	return tx.scan(prefix, nil, true, func(k, v []byte) error {
		if len(v) != 9 {
			return fmt.Errorf("revocation index entry %x is corrupt", k)
		}
		r.Serial = k[len(prefix):]
		r.RevokedAt = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		r.Reason = int(v[8])
		return fn(&r)
	})
}

// EachRevokedSince streams an issuer's revocations at or after since, in time order.
func (tx *Tx) EachRevokedSince(issuer string, since time.Time, fn func(*Revocation) error) error {
	prefix := cat(pIdxRevT, []byte(issuer), nil)
	var t [8]byte
	if since.After(time.Unix(0, 0)) {
		binary.BigEndian.PutUint64(t[:], uint64(since.UnixNano()))
	}
	var r Revocation
	return tx.scan(prefix, append(append([]byte{}, prefix...), t[:]...), true, func(k, v []byte) error {
		rest := k[len(prefix):]
		if len(rest) < 8 || len(v) != 1 {
			return fmt.Errorf("revocation time index entry %x is corrupt", k)
		}
		r.RevokedAt = time.Unix(0, int64(binary.BigEndian.Uint64(rest))).UTC()
		r.Serial = rest[8:]
		r.Reason = int(v[0])
		return fn(&r)
	})
}

// ---- subscribers ----

// PutSubscriber writes a subscriber and its CN index.
func (tx *Tx) PutSubscriber(s *Subscriber) error {
	if s.ID == "" {
		return errors.New("subscriber without ID")
	}
	old, err := tx.Subscriber(s.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if old != nil && !strings.EqualFold(old.CommonName, s.CommonName) {
		if err := tx.txn.Delete(cat(pIdxSubCN, fold(old.CommonName), []byte(old.ID))); err != nil {
			return err
		}
	}
	if err := tx.indexSubscriberAttrs(old, s); err != nil {
		return err
	}
	v, err := encode(s)
	if err != nil {
		return fmt.Errorf("encoding subscriber %s: %w", s.ID, err)
	}
	if err := tx.set(cat(pSub, []byte(s.ID)), v); err != nil {
		return fmt.Errorf("writing subscriber %s: %w", s.ID, err)
	}
	if err := tx.set(cat(pIdxSubCN, fold(s.CommonName), []byte(s.ID)), nil); err != nil {
		return fmt.Errorf("writing subscriber index %s: %w", s.ID, err)
	}
	tx.changed(KindSubscriber, s.ID)
	return nil
}

// Subscriber reads a subscriber by ID.
func (tx *Tx) Subscriber(id string) (*Subscriber, error) {
	b, err := tx.get(cat(pSub, []byte(id)))
	if err != nil {
		return nil, fmt.Errorf("reading subscriber %s: %w", id, err)
	}
	var s Subscriber
	if err := decode(b, &s); err != nil {
		return nil, fmt.Errorf("decoding subscriber %s: %w", id, err)
	}
	return &s, nil
}

// SubscribersByCommonName streams subscribers whose CN equals cn (case-insensitive).
func (tx *Tx) SubscribersByCommonName(cn string, fn func(*Subscriber) error) error {
	prefix := cat(pIdxSubCN, fold(cn), nil)
	return tx.scan(prefix, nil, false, func(k, _ []byte) error {
		s, err := tx.Subscriber(string(k[len(prefix):]))
		if err != nil {
			return err
		}
		return fn(s)
	})
}

// EachSubscriber streams every subscriber in ID order.
func (tx *Tx) EachSubscriber(fn func(*Subscriber) error) error {
	return tx.scan(pSub, nil, true, func(k, v []byte) error {
		var s Subscriber
		if err := decode(v, &s); err != nil {
			return fmt.Errorf("decoding subscriber %q: %w", k[len(pSub):], err)
		}
		return fn(&s)
	})
}

// ---- staff ----

// PutStaff writes a staff member and the index of their certificates.
func (tx *Tx) PutStaff(s *Staff) error {
	v, err := encode(s)
	if err != nil {
		return fmt.Errorf("encoding staff %s: %w", s.ID, err)
	}
	if err := tx.set(cat(pStaff, []byte(s.ID)), v); err != nil {
		return fmt.Errorf("writing staff %s: %w", s.ID, err)
	}
	for _, serial := range s.CertSerials {
		if err := tx.set(cat(pIdxStaffC, serial), []byte(s.ID)); err != nil {
			return fmt.Errorf("writing staff index %s: %w", s.ID, err)
		}
	}
	tx.changed(KindStaff, s.ID)
	return nil
}

// EachStaff streams every staff member in ID order.
func (tx *Tx) EachStaff(fn func(*Staff) error) error {
	return tx.scan(pStaff, nil, true, func(k, v []byte) error {
		var s Staff
		if err := decode(v, &s); err != nil {
			return fmt.Errorf("decoding staff %q: %w", k[len(pStaff):], err)
		}
		return fn(&s)
	})
}

// StaffByCert finds the staff member a client certificate serial belongs to.
func (tx *Tx) StaffByCert(serial []byte) (*Staff, error) {
	id, err := tx.get(cat(pIdxStaffC, serial))
	if err != nil {
		return nil, fmt.Errorf("finding staff for certificate %x: %w", serial, err)
	}
	b, err := tx.get(cat(pStaff, id))
	if err != nil {
		return nil, fmt.Errorf("reading staff %s: %w", id, err)
	}
	var s Staff
	if err := decode(b, &s); err != nil {
		return nil, fmt.Errorf("decoding staff %s: %w", id, err)
	}
	return &s, nil
}

// ---- blobs ----

// PutBlob writes an opaque record of a feature package (an OCSP response, a CRL).
func (tx *Tx) PutBlob(ns, k string, val []byte) error {
	if err := tx.set(cat(pBlob, []byte(ns), []byte(k)), val); err != nil {
		return fmt.Errorf("writing %s/%s: %w", ns, k, err)
	}
	tx.changed(KindBlob, ns+"/"+k)
	return nil
}

// Blob reads an opaque record; ErrNotFound if missing.
func (tx *Tx) Blob(ns, k string) ([]byte, error) {
	v, err := tx.get(cat(pBlob, []byte(ns), []byte(k)))
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", ns, k, err)
	}
	return v, nil
}

// DeleteBlob removes an opaque record.
func (tx *Tx) DeleteBlob(ns, k string) error {
	if err := tx.txn.Delete(cat(pBlob, []byte(ns), []byte(k))); err != nil {
		return fmt.Errorf("deleting %s/%s: %w", ns, k, err)
	}
	if err := tx.logReplicated(cat(pBlob, []byte(ns), []byte(k))); err != nil {
		return err
	}
	tx.changed(KindBlob, ns+"/"+k)
	return nil
}

// EachBlob streams the records of a namespace in key order. The value is only
// valid during fn.
func (tx *Tx) EachBlob(ns string, fn func(k string, val []byte) error) error {
	prefix := cat(pBlob, []byte(ns), nil)
	return tx.scan(prefix, nil, true, func(k, v []byte) error {
		return fn(string(k[len(prefix):]), v)
	})
}

// Counts is the number of records of each kind.
type Counts struct {
	CAs         int `json:"cas"`
	Certs       int `json:"certs"`
	Revoked     int `json:"revoked"`
	Subscribers int `json:"subscribers"`
	Staff       int `json:"staff"`
}

// Counts counts records by scanning keys only.
func (tx *Tx) Counts() (Counts, error) {
	var c Counts
	for _, p := range []struct {
		prefix []byte
		n      *int
	}{{pCA, &c.CAs}, {pCert, &c.Certs}, {pIdxRev, &c.Revoked}, {pSub, &c.Subscribers}, {pStaff, &c.Staff}} {
		if err := tx.scan(p.prefix, nil, false, func(_, _ []byte) error { *p.n++; return nil }); err != nil {
			return c, err
		}
	}
	return c, nil
}
