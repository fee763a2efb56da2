package config

// KB configures the service desk's knowledge base (package desk/kb). Its
// full-text index is <data_dir>/kb.bleve, derived from the store.
type KB struct {
	// MaxBodyBytes bounds an article's body. Default 65536.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// PublicRatePerMinute is how many public self-service searches one
	// client address (an IPv6 /64) may make per minute; beyond it the
	// answer is 429 with Retry-After. Default 30.
	PublicRatePerMinute int `yaml:"public_rate_per_minute"`
	// PublicBurst is how many it may make at once after a pause. Default 10.
	PublicBurst int `yaml:"public_burst"`
}

func defaultKB() KB {
	return KB{MaxBodyBytes: 64 << 10, PublicRatePerMinute: 30, PublicBurst: 10}
}

func (k *KB) validate(bad func(key, format string, a ...any)) {
	if k.MaxBodyBytes < 1024 || k.MaxBodyBytes > 1<<20 {
		bad("kb.max_body_bytes", "must be between 1024 and 1048576")
	}
	if k.PublicRatePerMinute < 1 || k.PublicRatePerMinute > 60000 {
		bad("kb.public_rate_per_minute", "must be between 1 and 60000")
	}
	if k.PublicBurst < 1 || k.PublicBurst > 10000 {
		bad("kb.public_burst", "must be between 1 and 10000")
	}
}
