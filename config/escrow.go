package config

// RAEscrow configures encryption certificates, key escrow and key recovery
// (SPEC Art. 4, 13): the key pair of an encryption certificate is made in
// the server and kept wrapped under a key-encryption key in the signer.
type RAEscrow struct {
	// KeyAlgorithm of the encryption keys the server makes: rsa-2048 or
	// ecdsa-p256. A request may ask for the other. Default "rsa-2048".
	KeyAlgorithm string `yaml:"key_algorithm"`
	// KEKName is the key-encryption key: the CKA_LABEL of an AES key in the
	// PKCS#11 token, or <data_dir>/keys/<name>.kek for the file signer. It
	// is made on first use. Default "certcenter-escrow-kek".
	KEKName string `yaml:"kek_name"`
	// Delivery is the default form a key reaches its holder in: "cms"
	// (EnvelopedData to the holder's RSA signing certificate) or "pkcs12"
	// (under a one-time password). Default "cms".
	Delivery string `yaml:"delivery"`
	// RecoveryDeadlineDays is the working days a key recovery may take
	// (SPEC Art. 13). Default 5.
	RecoveryDeadlineDays int `yaml:"recovery_deadline_days"`
	// JudicialApprovals (M) is the number of distinct recovery officers
	// that approve a judicial recovery, of RecoveryOfficers (N) enrolled
	// with the role recovery_officer. Defaults 2 of 3.
	JudicialApprovals int `yaml:"judicial_approvals"`
	RecoveryOfficers  int `yaml:"recovery_officers"`
}

func defaultRAEscrow() RAEscrow {
	return RAEscrow{KeyAlgorithm: "rsa-2048", KEKName: "certcenter-escrow-kek", Delivery: "cms",
		RecoveryDeadlineDays: 5, JudicialApprovals: 2, RecoveryOfficers: 3}
}

func (e *RAEscrow) validate(bad func(key, format string, a ...any)) {
	if e.KeyAlgorithm != "rsa-2048" && e.KeyAlgorithm != "ecdsa-p256" {
		bad("ra.escrow.key_algorithm", "%q is not one of rsa-2048, ecdsa-p256", e.KeyAlgorithm)
	}
	if !kekName(e.KEKName) {
		bad("ra.escrow.kek_name", "%q must be 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", e.KEKName)
	}
	if e.Delivery != "cms" && e.Delivery != "pkcs12" {
		bad("ra.escrow.delivery", "%q is not one of cms, pkcs12", e.Delivery)
	}
	if e.RecoveryDeadlineDays < 0 || e.RecoveryDeadlineDays > 60 {
		bad("ra.escrow.recovery_deadline_days", "must be between 0 and 60 working days")
	}
	if e.RecoveryOfficers < 1 || e.RecoveryOfficers > 20 {
		bad("ra.escrow.recovery_officers", "must be between 1 and 20")
	}
	if e.JudicialApprovals < 1 || e.JudicialApprovals > e.RecoveryOfficers {
		bad("ra.escrow.judicial_approvals", "must be between 1 and ra.escrow.recovery_officers (%d)", e.RecoveryOfficers)
	}
}

// kekName is the file signer's key name rule, so one name serves both
// providers.
func kekName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, c := range s {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}
