package orders

import (
	"net/netip"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
)

// address is a postal address of a payload, Shopify's or WooCommerce's
// field names (each platform fills its own).
type address struct {
	FirstName    *string `json:"first_name"`
	LastName     *string `json:"last_name"`
	Phone        *string `json:"phone"`
	Email        *string `json:"email"`
	City         *string `json:"city"`
	Zip          *string `json:"zip"`
	Postcode     *string `json:"postcode"`
	ProvinceCode *string `json:"province_code"`
	State        *string `json:"state"`
	CountryCode  *string `json:"country_code"`
	Country      *string `json:"country"`
}

// customer collects an order's raw customer fields, then hashes them. It
// lives on the parser's stack: only digests leave it.
type customer struct {
	raw [len(customerFields)][]string
}

// customerFields are the user_data keys filled from an order, indexed by
// the constants below.
var customerFields = [...]string{pii.Email, pii.Phone, pii.FirstName, pii.LastName, pii.City, pii.State, pii.Zip, pii.Country}

// Indexes of customerFields.
const (
	fEmail = iota
	fPhone
	fFirstName
	fLastName
	fCity
	fState
	fZip
	fCountry
)

// add records a raw value of field f (an index of customerFields).
func (c *customer) add(f int, v *string) {
	if v == nil {
		return
	}
	s := strings.TrimSpace(*v)
	if s == "" || len(s) > 256 {
		return
	}
	for _, have := range c.raw[f] {
		if have == s {
			return
		}
	}
	if len(c.raw[f]) < maxPIIValues {
		c.raw[f] = append(c.raw[f], s)
	}
}

// addAddress records the customer fields of an address; country is read
// from the code when there is one, else from the name.
func (c *customer) addAddress(a *address) {
	if a == nil {
		return
	}
	c.add(fFirstName, a.FirstName)
	c.add(fLastName, a.LastName)
	c.add(fPhone, a.Phone)
	c.add(fEmail, a.Email)
	c.add(fCity, a.City)
	c.add(fZip, first(a.Zip, a.Postcode))
	c.add(fState, first(a.ProvinceCode, a.State))
	c.add(fCountry, first(a.CountryCode, a.Country))
}

func first(vs ...*string) *string {
	for _, v := range vs {
		if v != nil && strings.TrimSpace(*v) != "" {
			return v
		}
	}
	return nil
}

// userData normalizes and hashes the collected fields (destinations/pii,
// as every ingest path). A value that cannot be normalized is left out and
// its field named in skipped; an order is never refused for one.
func (c *customer) userData(now time.Time, skipped *[]string) destinations.UserData {
	var u destinations.UserData
	slots := [len(customerFields)]*[]string{&u.Em, &u.Ph, &u.Fn, &u.Ln, &u.Ct, &u.St, &u.Zp, &u.Country}
	for i, f := range customerFields {
		bad := false
		for _, v := range c.raw[i] {
			h, err := pii.HashAt(f, v, now)
			if err != nil {
				bad = true
				continue
			}
			if !contains(*slots[i], h) {
				*slots[i] = append(*slots[i], h)
			}
		}
		if bad {
			*skipped = append(*skipped, "customer."+f)
		}
	}
	return u
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// clientIP returns ip when it is an IP address, else "".
func clientIP(ip string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil || a.Zone() != "" {
		return ""
	}
	return a.String()
}

// userAgent returns ua when it is printable and within bounds, else "".
func userAgent(ua string) string {
	if len(ua) > maxUserAgentLen {
		return ""
	}
	for i := 0; i < len(ua); i++ {
		if ua[i] < ' ' || ua[i] == 0x7f {
			return ""
		}
	}
	return ua
}
