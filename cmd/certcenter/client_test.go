package main

import (
	"strings"
	"testing"
)

func TestSerialArg(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"10135f7", "010135f7", ""},
		{"0x10:13:5F", "10135f", ""},
		{"0a1b", "0a1b", ""},
		{"", "", "empty"},
		{"10135g", "", "not hex"},
		{strings.Repeat("ab", 21), "", "more than 20 bytes"},
	} {
		got, err := serialArg(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("serialArg(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("serialArg(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
