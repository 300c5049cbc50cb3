// Package secrets encrypts destination credentials at rest with AES-256-GCM.
//
// A Keyring holds the current key (TAGWAY_SECRET_KEY) and any previous ones
// (TAGWAY_SECRET_KEY_PREVIOUS). Ciphertexts name the key that sealed them:
//
//	tw1.<key id>.<base64url(nonce || sealed)>
//
// where the key id is the first 8 hex digits of SHA-256("tagway secret key
// id" || key), so it identifies a key without revealing it. Decrypt picks the
// key by id; Encrypt always uses the current one. Rotating a key is therefore:
// set the new key as TAGWAY_SECRET_KEY, the old one as
// TAGWAY_SECRET_KEY_PREVIOUS, and every write re-encrypts under the new key;
// once every stored secret has been rewritten the previous key can go.
//
// Every ciphertext is bound to its place with additional data (for example
// "destination/meta-main/access_token"), so a ciphertext copied to another
// destination does not decrypt there.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// prefix starts every ciphertext this package makes.
const prefix = "tw1."

// ErrUnknownKey is returned by Decrypt for a ciphertext sealed with a key the
// keyring does not hold.
var ErrUnknownKey = errors.New("secrets: the ciphertext was sealed with a key this process does not have (set TAGWAY_SECRET_KEY_PREVIOUS?)")

// ErrNotCiphertext is returned by Decrypt for a value that is not a
// ciphertext of this package.
var ErrNotCiphertext = errors.New("secrets: not a tagway ciphertext")

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring encrypts with its current key and decrypts with any of its keys.
// It is safe for concurrent use.
type Keyring struct {
	current key
	byID    map[string]key
	rand    io.Reader
}

// ParseKey decodes a 32-byte key written as 64 hex digits or as base64
// (standard or URL alphabet, padded or not). Errors never quote the input.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("secrets: a key must be %d bytes written as 64 hex digits or base64 (openssl rand -base64 32)", KeySize)
}

// NewKeyring builds a keyring from the current key and any previous keys,
// each as ParseKey reads them. Empty previous entries are ignored.
func NewKeyring(current string, previous ...string) (*Keyring, error) {
	cur, err := newKey(current)
	if err != nil {
		return nil, fmt.Errorf("current key: %w", err)
	}
	k := &Keyring{current: cur, byID: map[string]key{cur.id: cur}, rand: rand.Reader}
	for i, p := range previous {
		if strings.TrimSpace(p) == "" {
			continue
		}
		pk, err := newKey(p)
		if err != nil {
			return nil, fmt.Errorf("previous key %d: %w", i+1, err)
		}
		if _, dup := k.byID[pk.id]; !dup {
			k.byID[pk.id] = pk
		}
	}
	return k, nil
}

func newKey(s string) (key, error) {
	raw, err := ParseKey(s)
	if err != nil {
		return key{}, err
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	return key{id: KeyID(raw), aead: aead}, nil
}

// KeyID names a key in ciphertexts without revealing it.
func KeyID(raw []byte) string {
	sum := sha256.Sum256(append([]byte("tagway secret key id"), raw...))
	return hex.EncodeToString(sum[:4])
}

// CurrentKeyID is the id of the key Encrypt uses.
func (k *Keyring) CurrentKeyID() string { return k.current.id }

// Encrypt seals plaintext under the current key, bound to aad.
func (k *Keyring) Encrypt(plaintext, aad string) (string, error) {
	nonce := make([]byte, k.current.aead.NonceSize())
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return "", fmt.Errorf("secrets: nonce: %w", err)
	}
	sealed := k.current.aead.Seal(nonce, nonce, []byte(plaintext), []byte(aad))
	return prefix + k.current.id + "." + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a ciphertext made by Encrypt with the same aad. It fails with
// ErrNotCiphertext, ErrUnknownKey or a generic error for a tampered value;
// no error quotes the ciphertext or the plaintext.
func (k *Keyring) Decrypt(ciphertext, aad string) (string, error) {
	id, body, ok := split(ciphertext)
	if !ok {
		return "", ErrNotCiphertext
	}
	key, ok := k.byID[id]
	if !ok {
		return "", ErrUnknownKey
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < key.aead.NonceSize() {
		return "", ErrNotCiphertext
	}
	n := key.aead.NonceSize()
	plain, err := key.aead.Open(nil, raw[:n], raw[n:], []byte(aad))
	if err != nil {
		return "", errors.New("secrets: the ciphertext does not open (tampered, or moved from another place)")
	}
	return string(plain), nil
}

// IsCurrent reports whether ciphertext was sealed with the current key, so a
// writer knows whether to re-encrypt it.
func (k *Keyring) IsCurrent(ciphertext string) bool {
	id, _, ok := split(ciphertext)
	return ok && id == k.current.id
}

// IsCiphertext reports whether s has the form of a ciphertext of this package.
func IsCiphertext(s string) bool {
	_, _, ok := split(s)
	return ok
}

func split(s string) (id, body string, ok bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return "", "", false
	}
	id, body, ok = strings.Cut(rest, ".")
	return id, body, ok && len(id) == 8 && body != ""
}
