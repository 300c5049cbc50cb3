package secrets

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

var (
	keyA = strings.Repeat("a1", 32)                                                      // hex
	keyB = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")) // base64
)

func TestParseKey(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{keyA, true},
		{keyB, true},
		{base64.RawURLEncoding.EncodeToString(make([]byte, 32)), true},
		{"short", false},
		{strings.Repeat("a1", 16), false}, // 16 bytes: AES-128 is refused
		{"", false},
	} {
		b, err := ParseKey(tt.in)
		if (err == nil) != tt.ok || (tt.ok && len(b) != KeySize) {
			t.Errorf("ParseKey(%q) = %d bytes, %v; want ok=%v", tt.in, len(b), err, tt.ok)
		}
		if err != nil && tt.in != "" && strings.Contains(err.Error(), tt.in) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
}

func TestEncryptDecryptAndRotation(t *testing.T) {
	old, err := NewKeyring(keyA)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := old.Encrypt("EAAsecret-token", "destination/meta/access_token")
	if err != nil {
		t.Fatal(err)
	}
	if !IsCiphertext(ct) || strings.Contains(ct, "EAAsecret") || !strings.HasPrefix(ct, "tw1."+old.CurrentKeyID()+".") {
		t.Fatalf("ciphertext %q", ct)
	}
	again, _ := old.Encrypt("EAAsecret-token", "destination/meta/access_token")
	if again == ct {
		t.Error("two encryptions of one value are equal: the nonce is not random")
	}
	if got, err := old.Decrypt(ct, "destination/meta/access_token"); err != nil || got != "EAAsecret-token" {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if _, err := old.Decrypt(ct, "destination/other/access_token"); err == nil {
		t.Error("a ciphertext moved to another place decrypted")
	}
	tampered := ct[:len(ct)-2] + "AA"
	if _, err := old.Decrypt(tampered, "destination/meta/access_token"); err == nil {
		t.Error("a tampered ciphertext decrypted")
	}

	// Rotation: the new key encrypts, the previous one still decrypts.
	rotated, err := NewKeyring(keyB, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.IsCurrent(ct) {
		t.Error("an old ciphertext reported as current")
	}
	if got, err := rotated.Decrypt(ct, "destination/meta/access_token"); err != nil || got != "EAAsecret-token" {
		t.Fatalf("previous-key Decrypt = %q, %v", got, err)
	}
	fresh, _ := rotated.Encrypt("x", "a")
	if !rotated.IsCurrent(fresh) {
		t.Error("a new ciphertext is not current")
	}
	// Without the previous key the old ciphertext is unknown.
	newOnly, _ := NewKeyring(keyB)
	if _, err := newOnly.Decrypt(ct, "destination/meta/access_token"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("err = %v; want ErrUnknownKey", err)
	}
	if _, err := newOnly.Decrypt("plain", "a"); !errors.Is(err, ErrNotCiphertext) {
		t.Errorf("err = %v; want ErrNotCiphertext", err)
	}
	raw, _ := hex.DecodeString(keyA)
	if KeyID(raw) != old.CurrentKeyID() || strings.Contains(keyA, old.CurrentKeyID()) {
		t.Error("key id is not a digest of the key")
	}
}
