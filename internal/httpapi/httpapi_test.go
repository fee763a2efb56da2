package httpapi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestParseSerial(t *testing.T) {
	full := "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567" // 20 bytes
	for _, tc := range []struct {
		name, in, want string
	}{
		{"ok/even hex", "0102", "0102"},
		{"ok/odd hex as tools print it without the leading zero", "10135f7", "010135f7"},
		{"ok/odd 39 digits is a 20-byte serial", full[1:], full},
		{"ok/upper case", "0A1B", "0a1b"},
		{"ok/colons", "0a:1b:2c", "0a1b2c"},
		{"ok/openssl style colons with odd first group", "a:1b:2c", "0a1b2c"},
		{"ok/0x prefix", "0x10135f7", "010135f7"},
		{"ok/0X prefix and odd", "0X135f", "135f"},
		{"ok/spaces", " 0a 1b ", "0a1b"},
		{"ok/single digit", "7", "07"},
		{"ok/leading zero bytes are not part of the integer", "000102", "0102"},
		{"ok/DER sign byte before a 20-byte serial", "00" + "8a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "8a1b2c3d4e5f60718293a4b5c6d7e8f901234567"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSerial(tc.in)
			if err != nil {
				t.Fatalf("ParseSerial(%q): %v", tc.in, err)
			}
			want, _ := hex.DecodeString(tc.want)
			if !bytes.Equal(got, want) {
				t.Errorf("ParseSerial(%q) = %x, want %x", tc.in, got, want)
			}
		})
	}
	for _, tc := range []struct {
		name, in, msg string
	}{
		{"fail/empty", "", "empty"},
		{"fail/only separators", " : ", "empty"},
		{"fail/only 0x", "0x", "empty"},
		{"fail/zero", "00", "zero"},
		{"fail/non-hex", "zz", "not hex"},
		{"fail/non-hex after good digits", "0102g", "not hex"},
		{"fail/21 bytes", "01" + full, "more than 20 bytes"},
		{"fail/41 digits", "1" + full, "more than 20 bytes"},
		{"fail/very long", strings.Repeat("0", 1000) + "1", "longer than"},
		{"fail/0x in the middle", "010x02", "not hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSerial(tc.in)
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
				t.Fatalf("ParseSerial(%q) = %x, %v; want a 400", tc.in, got, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ParseSerial(%q) error %q does not say %q", tc.in, err, tc.msg)
			}
		})
	}
}

// FuzzParseSerial: whatever the input, ParseSerial either refuses it with a
// 400 or returns 1 to 20 bytes without a leading zero byte, and the hex of
// that answer parses back to the same bytes.
func FuzzParseSerial(f *testing.F) {
	for _, s := range []string{"0102", "10135f", "0x10135f", "0a:1b:2c", "a:b", "", "00", "zz", " 7 ", "0X", strings.Repeat("f", 41)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseSerial(s)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "bad_request" {
				t.Fatalf("ParseSerial(%q): error %v is not a 400", s, err)
			}
			return
		}
		if len(b) == 0 || len(b) > 20 || b[0] == 0 {
			t.Fatalf("ParseSerial(%q) = %x: not 1 to 20 bytes without a leading zero", s, b)
		}
		again, err := ParseSerial(hex.EncodeToString(b))
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("ParseSerial(%x) = %x, %v; want it back", b, again, err)
		}
	})
}
