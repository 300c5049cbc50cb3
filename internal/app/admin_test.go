package app

import (
	"strings"
	"testing"
)

const (
	adminToken = "admin-root-token-0123456789"
	secretKey  = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

func TestReadAdminSettings(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string // part of the error; "" for none
	}{
		{map[string]string{}, ""},
		{map[string]string{"TAGWAY_ADMIN_TOKEN": "short"}, "TAGWAY_ADMIN_TOKEN"},
		{map[string]string{"TAGWAY_SECRET_KEY": "not-a-key"}, "TAGWAY_SECRET_KEY"},
		{map[string]string{"TAGWAY_SECRET_KEY_PREVIOUS": secretKey}, "TAGWAY_SECRET_KEY_PREVIOUS is set"},
		{map[string]string{"TAGWAY_SECRET_KEY": secretKey, "TAGWAY_SECRET_KEY_PREVIOUS": "bad"}, "previous key 1"},
		{map[string]string{"TAGWAY_COUNTRY_HEADER": "CF IPCountry"}, "TAGWAY_COUNTRY_HEADER"},
		{map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_SECRET_KEY": secretKey, "TAGWAY_COUNTRY_HEADER": "CF-IPCountry"}, ""},
	}
	for _, tt := range tests {
		s, err := readAdminSettings(envOf(tt.env))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: err %v; want %q", tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), secretKey) {
			t.Errorf("the error quotes the key")
		}
		if tt.env["TAGWAY_SECRET_KEY"] == secretKey && err == nil && s.Keyring == nil {
			t.Error("no keyring")
		}
	}
}
