package orders

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Headers of the platforms' webhook requests.
const (
	HeaderShopifyHmac       = "X-Shopify-Hmac-Sha256"
	HeaderShopifyTopic      = "X-Shopify-Topic"
	HeaderShopifyWebhookID  = "X-Shopify-Webhook-Id"
	HeaderWooSignature      = "X-WC-Webhook-Signature"
	HeaderWooTopic          = "X-WC-Webhook-Topic"
	HeaderWooDeliveryID     = "X-WC-Webhook-Delivery-ID"
	maxSignatureHeaderBytes = 128
)

// Verify reports whether signature, the value of X-Shopify-Hmac-Sha256 or
// X-WC-Webhook-Signature, is the base64 HMAC-SHA256 of the raw body under
// one of the secrets (several while a secret is being rotated). Both
// platforms sign the same way. Every secret is tried, each comparison in
// constant time; an empty secret never verifies anything.
func Verify(body []byte, signature string, secrets ...string) bool {
	signature = strings.TrimSpace(signature)
	if signature == "" || len(signature) > maxSignatureHeaderBytes {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		if hmac.Equal(got, Sign(body, secret)) {
			ok = true
		}
	}
	return ok
}

// Sign returns the HMAC-SHA256 of body under secret, the raw bytes whose
// base64 the platforms send.
func Sign(body []byte, secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// SignatureHeader returns the header value a platform would send for body
// under secret (base64 of Sign); for tests and tools that play a store.
func SignatureHeader(body []byte, secret string) string {
	return base64.StdEncoding.EncodeToString(Sign(body, secret))
}
