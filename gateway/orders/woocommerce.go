package orders

import (
	"bytes"
	"time"
)

// WooCommerce topics read (X-WC-Webhook-Topic).
const (
	WooOrderCreated  = "order.created"
	WooOrderUpdated  = "order.updated"
	WooOrderDeleted  = "order.deleted"
	WooOrderRestored = "order.restored"
)

// wooOrder is the part of WooCommerce's order payload (REST API v3 shape,
// as its order webhooks deliver it) that tagway reads.
type wooOrder struct {
	ID              jsonID     `json:"id"`
	Status          string     `json:"status"`
	Currency        string     `json:"currency"`
	DateCreatedGMT  *string    `json:"date_created_gmt"`
	DateModifiedGMT *string    `json:"date_modified_gmt"`
	DatePaidGMT     *string    `json:"date_paid_gmt"`
	Total           jsonAmount `json:"total"`
	CreatedVia      *string    `json:"created_via"`

	CustomerIPAddress *string  `json:"customer_ip_address"`
	CustomerUserAgent *string  `json:"customer_user_agent"`
	Billing           *address `json:"billing"`
	Shipping          *address `json:"shipping"`

	MetaData []wooMeta `json:"meta_data"`

	LineItems []rawLineItem `json:"line_items"`
	Refunds   []struct {
		ID    jsonID     `json:"id"`
		Total jsonAmount `json:"total"`
	} `json:"refunds"`
}

// wooMeta is one entry of an order's meta_data.
type wooMeta struct {
	Name  jsonText `json:"key"`
	Value jsonText `json:"value"`
}

// IsWooPing reports whether a request body is WooCommerce's ping, sent
// unsigned when a webhook is created: "webhook_id=<digits>". The ping
// carries no data; it is answered 200 and nothing is stored.
func IsWooPing(body []byte) bool {
	id, ok := bytes.CutPrefix(bytes.TrimSpace(body), []byte("webhook_id="))
	return ok && len(id) > 0 && len(id) <= 20 && allDigits(string(id))
}

// ParseWooCommerce reads one WooCommerce webhook body of the given topic
// (X-WC-Webhook-Topic): the order for order.created, order.updated and
// order.restored, the order id for order.deleted. now is the receive time.
// Errors are *PayloadError (joined when several), or ErrUnknownTopic.
func ParseWooCommerce(topic string, body []byte, now time.Time) (Change, error) {
	c := Change{Source: WooCommerce, Topic: topic, Kind: KindOrder, ReceivedAt: now}
	switch topic {
	case WooOrderCreated, WooOrderUpdated, WooOrderRestored:
		var raw wooOrder
		if err := decode(body, &raw); err != nil {
			return Change{}, err
		}
		o, err := raw.order(now)
		if err != nil {
			return Change{}, err
		}
		c.OrderID, c.Order = o.ID, o
		return c, nil
	case WooOrderDeleted:
		var raw struct {
			ID jsonID `json:"id"`
		}
		if err := decode(body, &raw); err != nil {
			return Change{}, err
		}
		var p problems
		c.Kind, c.OrderID = KindDeleted, p.requireID("id", raw.ID)
		if err := p.err(); err != nil {
			return Change{}, err
		}
		return c, nil
	}
	return Change{}, ErrUnknownTopic
}

// order validates the payload and builds the Order.
func (w *wooOrder) order(now time.Time) (*Order, error) {
	var p problems
	o := &Order{
		ID:        p.requireID("id", w.ID),
		CreatedAt: p.orderTime("date_created_gmt", w.DateCreatedGMT, now, parseWooTime),
		UpdatedAt: p.optionalTime("date_modified_gmt", w.DateModifiedGMT, parseWooTime),
		Currency:  p.currency("currency", w.Currency, true),
		Total:     p.amount("total", w.Total),
		Status:    w.Status,
	}
	paidAt := p.optionalTime("date_paid_gmt", w.DatePaidGMT, parseWooTime)
	switch w.Status {
	case "processing", "completed":
		o.Paid = true
	case "refunded":
		o.Paid = !paidAt.IsZero()
	case "cancelled":
		o.Cancelled = true
	case "trash":
		o.Deleted = true
	}
	if w.CreatedVia != nil && len(*w.CreatedVia) <= MaxIDLen {
		o.Channel = *w.CreatedVia
	}

	p.lineItems(o, w.LineItems)
	if len(w.Refunds) > MaxRefunds {
		p.add("refunds", "more than %d refunds", MaxRefunds)
	} else {
		for i, r := range w.Refunds {
			field := index("refunds", i)
			id := p.requireID(field+".id", r.ID)
			if r.Total.bad || !r.Total.set {
				p.add(field+".total", "must be a decimal amount (a number or a numeric string)")
				continue
			}
			// WooCommerce lists a refund's total as a negative amount.
			amount := r.Total.v
			if amount < 0 {
				amount = -amount
			}
			o.Refunds = append(o.Refunds, Refund{ID: id, OrderID: o.ID, Amount: amount, Currency: o.Currency})
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}

	var a attrs
	for i, m := range w.MetaData {
		if i == maxAttrs {
			break
		}
		a.read("meta_data.", attrEntry(m), &o.Skipped)
	}
	o.Link = a.link("", now, &o.Skipped)

	var cu customer
	cu.addAddress(w.Billing)
	if w.Billing == nil || first(w.Billing.Email, w.Billing.Phone, w.Billing.LastName) == nil {
		cu.addAddress(w.Shipping)
	} else if w.Shipping != nil {
		cu.add(fPhone, w.Shipping.Phone)
	}
	o.UserData = cu.userData(now, &o.Skipped)
	if w.CustomerIPAddress != nil {
		o.UserData.ClientIPAddress = clientIP(*w.CustomerIPAddress)
	}
	if w.CustomerUserAgent != nil {
		o.UserData.ClientUserAgent = userAgent(*w.CustomerUserAgent)
	}
	return o, nil
}
