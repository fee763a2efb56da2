package token

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/signer"
)

// TestEncryptECBMatchesOpenSSL checks each challenge-response cipher
// against openssl enc on the zero-padded challenge.
func TestEncryptECBMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is not installed (apt-get install openssl)")
	}
	for _, tc := range []struct {
		form, cipher, key string
	}{
		{FormSM4ECB, "sm4-ecb", "0123456789abcdeffedcba9876543210"},
		{FormAESECB, "aes-128-ecb", "000102030405060708090a0b0c0d0e0f"},
		{Form3DESECB, "des-ede3", "000102030405060708090a0b0c0d0e0f1011121314151617"},
	} {
		for _, challenge := range []string{"0123456789abcdef", "0123456789abcdeffedcba9876543210", "a1"} {
			t.Run(tc.form+"/"+challenge, func(t *testing.T) {
				key, _ := hex.DecodeString(tc.key)
				ch, _ := hex.DecodeString(challenge)
				got, err := EncryptECB(tc.form, key, ch)
				if err != nil {
					t.Fatal(err)
				}
				padded := make([]byte, len(got))
				copy(padded, ch)
				cmd := exec.Command("openssl", "enc", "-e", "-"+tc.cipher, "-K", tc.key, "-nopad")
				cmd.Stdin = bytes.NewReader(padded)
				want, err := cmd.Output()
				if err != nil {
					t.Fatalf("openssl enc -%s: %v", tc.cipher, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("EncryptECB = %x, openssl = %x", got, want)
				}
			})
		}
	}
	// The SM4 standard's example (GB/T 32907 A.1).
	key, _ := hex.DecodeString("0123456789abcdeffedcba9876543210")
	got, _ := EncryptECB(FormSM4ECB, key, key)
	if hex.EncodeToString(got) != "681edf34d206965e86b3e94f536e4246" {
		t.Fatalf("SM4 of the standard's example = %x", got)
	}
}

func TestSecretsDerived(t *testing.T) {
	ctx := context.Background()
	f, err := signer.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.GenerateSecret(ctx, "token-admin"); err != nil {
		t.Fatal(err)
	}
	s := Secrets{Deriver: f, Name: "token-admin"}
	a, err := s.SOPIN(ctx, "A1")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.SOPIN(ctx, "A1")
	b, _ := s.SOPIN(ctx, "A2")
	if a != again || a == b || len(a) != SOPINLength {
		t.Fatalf("SO PINs %q %q %q: want stable per serial, distinct across serials, %d hex digits", a, again, b, SOPINLength)
	}
	k1, _ := s.AdminKey(ctx, FormSM4ECB, "A1")
	k2, _ := s.AdminKey(ctx, FormAESECB, "A1")
	k3, _ := s.AdminKey(ctx, Form3DESECB, "A1")
	if len(k1) != 16 || len(k2) != 16 || len(k3) != 24 || bytes.Equal(k1, k2) {
		t.Fatalf("admin keys %x %x %x", k1, k2, k3)
	}
	if strings.Contains(hex.EncodeToString(k1), a) {
		t.Fatal("the admin key contains the SO PIN")
	}
	if _, err := s.Respond(ctx, FormSM4ECB, "A1", nil); !errors.Is(err, ErrChallenge) {
		t.Fatalf("empty challenge: %v", err)
	}
	if _, err := s.AdminKey(ctx, FormSOPIN, "A1"); err == nil {
		t.Fatal("an so_pin model has no admin key")
	}
	if _, err := (Secrets{Deriver: f, Name: "missing"}).SOPIN(ctx, "A1"); !errors.Is(err, signer.ErrKeyNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
}

func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{"", "00", "0123456789abcdef", "zz", strings.Repeat("ab", 64), strings.Repeat("ab", 65), "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseChallenge(s)
		if err != nil {
			if !errors.Is(err, ErrChallenge) {
				t.Fatalf("error %v is not ErrChallenge", err)
			}
			return
		}
		if len(b) == 0 || len(b) > MaxChallenge {
			t.Fatalf("accepted %d bytes", len(b))
		}
		for _, form := range []string{FormSM4ECB, FormAESECB, Form3DESECB} {
			key := make([]byte, 24)
			n, _ := keySize(form)
			out, err := EncryptECB(form, key[:n], b)
			if err != nil || len(out) < len(b) || len(out)%8 != 0 {
				t.Fatalf("%s of %x: %x, %v", form, b, out, err)
			}
		}
	})
}
