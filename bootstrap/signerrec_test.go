package bootstrap

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/config"
)

func TestSignerRecord(t *testing.T) {
	initCfg := config.Default()
	initCfg.DataDir = t.TempDir()
	initCfg.Signer.Provider = "pkcs11"
	initCfg.Signer.PKCS11.Module = "/usr/lib/softhsm/libsofthsm2.so"
	initCfg.Signer.PKCS11.TokenLabel = "ca-token"
	initCfg.Signer.PKCS11.PINEnv = "MY_PIN"
	if err := writeSignerRecord(initCfg); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(initCfg.DataDir, SignerRecordFile))
	if !strings.Contains(string(b), "MY_PIN") || !strings.Contains(string(b), "ca-token") {
		t.Errorf("record:\n%s", b)
	}
	log := slog.New(slog.DiscardHandler)
	t.Run("ok/no config uses the record", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir = initCfg.DataDir
		if err := ApplySignerRecord(cfg, log); err != nil {
			t.Fatal(err)
		}
		p := cfg.Signer.PKCS11
		if cfg.Signer.Provider != "pkcs11" || p.Module != initCfg.Signer.PKCS11.Module || p.TokenLabel != "ca-token" || p.PINEnv != "MY_PIN" || p.PoolSize != 8 {
			t.Errorf("signer = %+v", cfg.Signer)
		}
		if err := cfg.Validate(); err != nil {
			t.Error(err)
		}
	})
	t.Run("ok/config agrees, PIN from elsewhere", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir = initCfg.DataDir
		cfg.Signer = initCfg.Signer
		cfg.Signer.PKCS11.PINEnv, cfg.Signer.PKCS11.PINFile = "", "/run/secrets/pin"
		if err := ApplySignerRecord(cfg, log); err != nil {
			t.Fatal(err)
		}
		if cfg.Signer.PKCS11.PINFile != "/run/secrets/pin" {
			t.Errorf("the config's PIN source was replaced: %+v", cfg.Signer.PKCS11)
		}
	})
	t.Run("fail/config names another token", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir = initCfg.DataDir
		cfg.Signer = initCfg.Signer
		cfg.Signer.PKCS11.TokenLabel = "other"
		err := ApplySignerRecord(cfg, log)
		if err == nil || !strings.Contains(err.Error(), "token other") || !strings.Contains(err.Error(), "token ca-token") {
			t.Errorf("err = %v, want one naming both tokens", err)
		}
	})
	t.Run("ok/no record", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		if err := ApplySignerRecord(cfg, log); err != nil || cfg.Signer.Provider != "file" {
			t.Errorf("%v %+v", err, cfg.Signer)
		}
	})
	t.Run("fail/corrupt record", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		os.WriteFile(filepath.Join(cfg.DataDir, SignerRecordFile), []byte("provider: pkcs11\npin: 1234\n"), 0o600)
		if err := ApplySignerRecord(cfg, log); err == nil || !strings.Contains(err.Error(), SignerRecordFile) {
			t.Errorf("err = %v", err)
		}
	})
}
