package orders

import (
	"errors"
	"fmt"
	"time"

	"github.com/tagway/tagway/destinations"
)

// Source is the store platform a webhook comes from.
type Source string

// The store platforms.
const (
	Shopify     Source = "shopify"
	WooCommerce Source = "woocommerce"
)

// Kind is what a Change carries.
type Kind string

// Kinds of change.
const (
	// KindOrder carries the whole order as the platform holds it now
	// (Shopify orders/create, orders/updated, orders/paid,
	// orders/cancelled; WooCommerce order.created, order.updated,
	// order.restored).
	KindOrder Kind = "order"
	// KindRefund carries one refund of an order (Shopify refunds/create).
	KindRefund Kind = "refund"
	// KindDeleted says the order was deleted (WooCommerce order.deleted,
	// which moves it to the trash); only OrderID is set.
	KindDeleted Kind = "deleted"
)

// Bounds of a parsed order. A payload over a bound that cannot be cut
// without changing the order's revenue is refused.
const (
	// MaxLineItems is the most line items kept; later ones are left out
	// (Order.LineItemsTruncated), the order's total is unaffected.
	MaxLineItems = 500
	// MaxRefunds is the most refunds an order may carry; more is refused.
	MaxRefunds = 1000
	// MaxRefundTransactions is the most transactions one refund may
	// carry; more is refused.
	MaxRefundTransactions = 100
	// MaxIDLen bounds an id (order, line item, refund).
	MaxIDLen = 64
	// MaxURLLen bounds a landing URL read for click ids; a longer one is
	// left out (Order.Skipped).
	MaxURLLen = 8192
	// maxAttrs is the most note attributes or meta entries read.
	maxAttrs = 200
	// maxAttrValueLen bounds one attribute value read for link material.
	maxAttrValueLen = 4096
	// maxUserAgentLen bounds the buyer's user agent kept.
	maxUserAgentLen = 512
	// maxPIIValues is the most distinct values kept per customer field.
	maxPIIValues = 3
)

// Change is one verified webhook delivery, parsed: what the caller queues
// and later applies to its order store. It carries no raw PII.
type Change struct {
	Source Source `json:"source"`
	// Topic is the platform's topic ("orders/create", "order.updated").
	Topic string `json:"topic"`
	// DeliveryID identifies the delivery for deduplication: Shopify's
	// X-Shopify-Webhook-Id (the same on every retry of one delivery),
	// WooCommerce's X-WC-Webhook-Delivery-ID; empty when the request had
	// none (set by the Handler, not by the parsers).
	DeliveryID string `json:"delivery_id,omitempty"`
	Kind       Kind   `json:"kind"`
	// OrderID is the platform's order id as a decimal string.
	OrderID string `json:"order_id"`
	// Order is set for KindOrder, Refund for KindRefund.
	Order  *Order  `json:"order,omitempty"`
	Refund *Refund `json:"refund,omitempty"`
	// ReceivedAt is when the gateway accepted the delivery.
	ReceivedAt time.Time `json:"received_at"`
}

// Order is an order as the platform holds it at the time of the webhook.
type Order struct {
	ID string `json:"id"`
	// CreatedAt is the order's own creation time (attribution windows
	// are measured from it); UpdatedAt its last change (zero when the
	// payload had none), which orders deliveries that arrive out of order.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Currency is the ISO 4217 code of the amounts, upper case.
	Currency string `json:"currency"`
	// Total is what the customer was charged: Shopify's total_price,
	// WooCommerce's total (taxes and shipping included).
	Total Amount `json:"total"`
	// Refunds are the refunds the payload lists.
	Refunds []Refund `json:"refunds,omitempty"`
	// Status is the platform's own status: Shopify's financial_status,
	// WooCommerce's status.
	Status string `json:"status"`
	// Paid reports that the order has been paid: Shopify's orders/paid
	// topic or a financial_status of paid, partially_refunded or
	// refunded; WooCommerce's status processing or completed, or
	// refunded with a payment date.
	Paid bool `json:"paid"`
	// Cancelled reports a cancelled order (Shopify cancelled_at,
	// WooCommerce status cancelled); Deleted one in WooCommerce's trash.
	Cancelled bool `json:"cancelled,omitempty"`
	Deleted   bool `json:"deleted,omitempty"`
	// Test marks Shopify's test orders (bogus gateway, test mode).
	Test bool `json:"test,omitempty"`
	// Channel is where the order was placed: Shopify's source_name
	// ("web", "pos", "shopify_draft_order"...), WooCommerce's created_via
	// ("checkout", "admin", "rest-api"...).
	Channel string `json:"channel,omitempty"`

	LineItems []LineItem `json:"line_items,omitempty"`
	// LineItemsTruncated reports that line items past MaxLineItems were
	// left out.
	LineItemsTruncated bool `json:"line_items_truncated,omitempty"`

	// UserData holds the customer's e-mail, phone, name and address as
	// normalized SHA-256 digests (destinations/pii), and the buyer's IP
	// address and user agent when the platform reports them.
	UserData destinations.UserData `json:"user_data"`
	// Link is what ties the order to its visitor and clicks.
	Link Link `json:"link"`
	// Skipped names the fields that were present but unusable and were
	// left out (a malformed e-mail, a click id attribute that does not
	// parse); never their values.
	Skipped []string `json:"skipped,omitempty"`
}

// LineItem is one line of an order.
type LineItem struct {
	// ID names what was bought: the variant's id (Shopify variant_id,
	// WooCommerce variation_id), else the product's, else the SKU, else
	// the line's own id.
	ID       string `json:"id"`
	Quantity int    `json:"quantity"`
	// Price is the unit price before order-level discounts.
	Price Amount `json:"price"`
}

// Refund is money given back on an order.
type Refund struct {
	// ID is the platform's refund id, which makes applying a refund twice
	// harmless.
	ID      string `json:"id"`
	OrderID string `json:"order_id"`
	// Amount is positive: what was returned to the customer.
	Amount Amount `json:"amount"`
	// Currency of Amount; empty when the payload did not say (then the
	// order's currency).
	Currency  string    `json:"currency,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Link is the material that ties an order to its visitor and ad clicks,
// strongest first.
type Link struct {
	// VisitorID is tagway's visitor id (_tw_vid) carried by the order:
	// Shopify's note attribute _tw_vid, WooCommerce's meta _tw_vid.
	VisitorID string `json:"vid,omitempty"`
	// ClickIDs are the click ids the order carries with their capture
	// times (the _tw_cid attribute, and the fbclid of _tw_fbc), by URL
	// parameter name.
	ClickIDs map[string]destinations.ClickID `json:"click_ids,omitempty"`
	// Fbp and Fbc are Meta's browser cookies carried by the order
	// (attributes _tw_fbp, _tw_fbc), passed on to Meta as they are.
	Fbp string `json:"fbp,omitempty"`
	Fbc string `json:"fbc,omitempty"`
	// LandingURL is the landing page of the session that placed the
	// order (Shopify landing_site, WooCommerce's
	// _wc_order_attribution_session_entry), reduced to its path and its
	// click-id and utm_* parameters: other query parameters may hold
	// personal data and are dropped.
	LandingURL string `json:"landing_url,omitempty"`
	// LandingClickIDs are the click ids in the landing URL's query, by
	// parameter name.
	LandingClickIDs map[string]string `json:"landing_click_ids,omitempty"`
	// LandingAt is when the landing session started
	// (_wc_order_attribution_session_start_time); zero when unknown.
	LandingAt time.Time `json:"landing_at,omitzero"`
}

// PayloadError is a webhook body that cannot be read as the topic's
// payload. Field names the offending field (JSON path); the message never
// holds a value from the payload.
type PayloadError struct {
	Field string
	Msg   string
}

func (e *PayloadError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func payloadErr(field, format string, args ...any) *PayloadError {
	return &PayloadError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ErrUnknownTopic is returned for a topic the parsers do not read (a
// product webhook pointed at the order endpoint); the handler answers 200
// and stores nothing, so the platform does not retry it.
var ErrUnknownTopic = errors.New("topic not handled")
