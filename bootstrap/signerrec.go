package bootstrap

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/certcenter/certcenter/config"
)

// SignerRecordFile is where init records the signer the CA keys were made
// in, relative to the data directory: seed, serve and recover without a
// config must find the keys where init put them. It never holds the PIN,
// only where to read it.
const SignerRecordFile = "signer.yaml"

type signerRecord struct {
	Provider   string `yaml:"provider"`
	Module     string `yaml:"module,omitempty"`
	TokenLabel string `yaml:"token_label,omitempty"`
	Slot       *uint  `yaml:"slot,omitempty"`
	PINEnv     string `yaml:"pin_env,omitempty"`
	PINFile    string `yaml:"pin_file,omitempty"`
}

func recordOf(s config.Signer) signerRecord {
	r := signerRecord{Provider: s.Provider}
	if s.Provider == "pkcs11" {
		p := s.PKCS11
		r.Module, r.TokenLabel, r.Slot, r.PINEnv, r.PINFile = p.Module, p.TokenLabel, p.Slot, p.PINEnv, p.PINFile
	}
	return r
}

func (r signerRecord) String() string {
	if r.Provider != "pkcs11" {
		return "provider " + r.Provider
	}
	s := fmt.Sprintf("provider pkcs11, module %s", r.Module)
	if r.TokenLabel != "" {
		s += ", token " + r.TokenLabel
	}
	if r.Slot != nil {
		s += fmt.Sprintf(", slot %d", *r.Slot)
	}
	return s
}

// sameKeys reports whether two records name the same place for the keys
// (the PIN's source may change).
func (r signerRecord) sameKeys(o signerRecord) bool {
	return r.Provider == o.Provider && r.Module == o.Module && r.TokenLabel == o.TokenLabel &&
		(r.Slot == nil) == (o.Slot == nil) && (r.Slot == nil || *r.Slot == *o.Slot)
}

// writeSignerRecord records cfg's signer in the data directory (init).
func writeSignerRecord(cfg *config.Config) error {
	b, err := yaml.Marshal(recordOf(cfg.Signer))
	if err != nil {
		return err
	}
	b = append([]byte("# Written by certcenter init: where this data directory's CA keys live.\n# A config whose signer section contradicts it is refused. No PIN is stored here.\n"), b...)
	return writeFile(filepath.Join(cfg.DataDir, SignerRecordFile), b, 0o600)
}

// ApplySignerRecord makes cfg use the signer init recorded when cfg's own
// signer section is the default (no config said otherwise), and refuses a
// config that names another place for the keys.
func ApplySignerRecord(cfg *config.Config, log *slog.Logger) error {
	path := filepath.Join(cfg.DataDir, SignerRecordFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // made before init recorded the signer
	}
	if err != nil {
		return fmt.Errorf("reading the signer record: %w", err)
	}
	var rec signerRecord
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if rec.Provider != "file" && rec.Provider != "pkcs11" {
		return fmt.Errorf("%s: unknown provider %q", path, rec.Provider)
	}
	def := config.Default().Signer
	p := &cfg.Signer.PKCS11
	if cfg.Signer.Provider == def.Provider && p.Module == "" && p.TokenLabel == "" && p.Slot == nil {
		if rec.Provider == "file" {
			return nil
		}
		cfg.Signer.Provider = rec.Provider
		p.Module, p.TokenLabel, p.Slot = rec.Module, rec.TokenLabel, rec.Slot
		if p.PINFile == "" && p.PINEnv == def.PKCS11.PINEnv {
			p.PINEnv, p.PINFile = rec.PINEnv, rec.PINFile
		}
		log.Info("using the signer recorded at init", "record", path, "signer", rec.String())
		return nil
	}
	if got := recordOf(cfg.Signer); !got.sameKeys(rec) {
		return fmt.Errorf("signer: the config says %s, but %s was initialised with %s (recorded in %s): use the signer the CA keys are in", got, cfg.DataDir, rec, path)
	}
	return nil
}
