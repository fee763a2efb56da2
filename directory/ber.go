package directory

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// A minimal BER (X.690, the LDAP subset of RFC 4511 section 5.1) reader and
// writer. Requests are parsed in place without building a packet tree, and
// responses are appended to byte slices, because the search path must cost
// almost nothing beyond the system calls.

// elem is one decoded TLV; body aliases the input.
type elem struct {
	tag  byte // the identifier octet: class, constructed bit and tag number
	body []byte
}

var (
	errTruncated = errors.New("truncated BER element")
	errLength    = errors.New("bad BER length")
)

// readElem decodes the first TLV of b and returns it with the bytes after it.
// Multi-octet tags and the indefinite length form are not LDAP and are refused.
func readElem(b []byte) (elem, []byte, error) {
	if len(b) < 2 {
		return elem{}, nil, errTruncated
	}
	tag := b[0]
	if tag&0x1f == 0x1f {
		return elem{}, nil, fmt.Errorf("multi-octet BER tag %#x", tag)
	}
	n, hdr, err := parseLength(b[1:])
	if err != nil {
		return elem{}, nil, err
	}
	hdr++
	if n > len(b)-hdr {
		return elem{}, nil, errTruncated
	}
	return elem{tag: tag, body: b[hdr : hdr+n]}, b[hdr+n:], nil
}

// parseLength decodes a definite length; it returns the length and the
// number of octets it took.
func parseLength(b []byte) (int, int, error) {
	if len(b) == 0 {
		return 0, 0, errTruncated
	}
	l := b[0]
	if l < 0x80 {
		return int(l), 1, nil
	}
	k := int(l & 0x7f)
	if k == 0 || k > 4 {
		return 0, 0, errLength
	}
	if len(b) < 1+k {
		return 0, 0, errTruncated
	}
	n := 0
	for _, c := range b[1 : 1+k] {
		n = n<<8 | int(c)
	}
	if n < 0 {
		return 0, 0, errLength
	}
	return n, 1 + k, nil
}

// readPDU reads one LDAPMessage (a SEQUENCE) from r into buf, refusing one
// longer than max before reading its body.
func readPDU(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	tag, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if tag != 0x30 {
		return nil, fmt.Errorf("%w: message starts with tag %#x, not SEQUENCE", errMalformed, tag)
	}
	var lb [5]byte
	if lb[0], err = r.ReadByte(); err != nil {
		return nil, noEOF(err)
	}
	k := 0
	if lb[0] >= 0x80 {
		k = int(lb[0] & 0x7f)
		if k == 0 || k > 4 {
			return nil, fmt.Errorf("%w: %v", errMalformed, errLength)
		}
		if _, err := io.ReadFull(r, lb[1:1+k]); err != nil {
			return nil, noEOF(err)
		}
	}
	n, _, err := parseLength(lb[:1+k])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if n > max {
		return nil, fmt.Errorf("%w: message of %d bytes exceeds the limit of %d", errTooLarge, n, max)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, noEOF(err)
	}
	return buf, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseInt decodes a two's-complement INTEGER or ENUMERATED body.
func parseInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 8 {
		return 0, fmt.Errorf("integer of %d octets", len(b))
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return v, nil
}

// ---- writing ----

func appendLength(dst []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n < 1<<8:
		return append(dst, 0x81, byte(n))
	case n < 1<<16:
		return append(dst, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		return append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendTLV(dst []byte, tag byte, body []byte) []byte {
	dst = append(dst, tag)
	dst = appendLength(dst, len(body))
	return append(dst, body...)
}

func appendString(dst []byte, tag byte, s string) []byte {
	dst = append(dst, tag)
	dst = appendLength(dst, len(s))
	return append(dst, s...)
}

func appendInt(dst []byte, tag byte, v int64) []byte {
	n := 1
	for n < 8 && (v>>(8*n-1) != 0 && v>>(8*n-1) != -1) {
		n++
	}
	dst = append(dst, tag, byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// wrap turns dst[start:] into the body of a TLV with the given tag. It moves
// the body once, which is cheaper than encoding it twice to learn its length.
func wrap(dst []byte, start int, tag byte) []byte {
	n := len(dst) - start
	var hdr [6]byte
	h := appendLength(append(hdr[:0], tag), n)
	dst = append(dst, h...) // grow by the header size
	copy(dst[start+len(h):], dst[start:start+n])
	copy(dst[start:], h)
	return dst
}
