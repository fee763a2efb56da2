package config

import (
	"fmt"
	"regexp"
	"slices"
)

// Tokens configures the USBKey inventory and unlocking (package token,
// SPEC Art. 4, 12, 25).
type Tokens struct {
	// DeriveSecret names the master secret in the signer (a key file
	// <name>.hmac beside the file signer's keys, or a generic secret key
	// labelled so on the HSM) from which each token's SO PIN or admin key
	// is derived with its serial. It is created at the first start with an
	// empty inventory; losing it makes every personalised token
	// unrecoverable, so back it up with the CA keys. Default "token-admin".
	DeriveSecret string `yaml:"derive_secret"`
	// Models are the token models in use and how each is unlocked.
	// Default: pkcs11 (so_pin) and skf (sm4-ecb).
	Models []TokenModel `yaml:"models"`
}

// TokenModel is one kind of USBKey.
type TokenModel struct {
	// Name is what the inventory records as the token's model. Required;
	// letters, digits, . _ -.
	Name string `yaml:"name"`
	// Unlock is how the holder's client resets the user PIN: "so_pin" (a
	// PKCS#11 token: the client logs in as SO with the derived SO PIN and
	// calls C_InitPIN) or a challenge-response cipher of a GM/T 0016 SKF or
	// vendor token, under the derived admin key: "sm4-ecb", "3des-ecb",
	// "aes-ecb". Required.
	Unlock string `yaml:"unlock"`
}

// TokenUnlockForms are the values of tokens.models[].unlock.
var TokenUnlockForms = []string{"so_pin", "sm4-ecb", "3des-ecb", "aes-ecb"}

var tokenModelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func defaultTokens() Tokens {
	return Tokens{
		DeriveSecret: "token-admin",
		Models:       []TokenModel{{Name: "pkcs11", Unlock: "so_pin"}, {Name: "skf", Unlock: "sm4-ecb"}},
	}
}

// Model returns the model called name.
func (t Tokens) Model(name string) (TokenModel, bool) {
	i := slices.IndexFunc(t.Models, func(m TokenModel) bool { return m.Name == name })
	if i < 0 {
		return TokenModel{}, false
	}
	return t.Models[i], true
}

func (t *Tokens) validate(bad func(key, format string, a ...any)) {
	if !tokenModelName.MatchString(t.DeriveSecret) {
		bad("tokens.derive_secret", "%q is not a key name (letters, digits, . _ -)", t.DeriveSecret)
	}
	seen := map[string]bool{}
	for i, m := range t.Models {
		key := fmt.Sprintf("tokens.models[%d]", i)
		if !tokenModelName.MatchString(m.Name) {
			bad(key+".name", "%q is not a model name (letters, digits, . _ -)", m.Name)
		}
		if seen[m.Name] {
			bad(key+".name", "model %q is listed twice", m.Name)
		}
		seen[m.Name] = true
		if !slices.Contains(TokenUnlockForms, m.Unlock) {
			bad(key+".unlock", "%q is not one of so_pin, sm4-ecb, 3des-ecb, aes-ecb", m.Unlock)
		}
	}
}
