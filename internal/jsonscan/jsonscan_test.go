package jsonscan

import "testing"

// plainByByte is Plain one byte at a time.
func plainByByte(s string, html bool) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || html && (c == '<' || c == '>' || c == '&') {
			return i
		}
	}
	return len(s)
}

func TestPlain(t *testing.T) {
	for _, c := range []struct {
		s          string
		want, html int
	}{
		{"", 0, 0},
		{"abc", 3, 3},
		{"Jane.Doe@example.com", 20, 20},
		{"0123456789abcdef\"", 16, 16},
		{"0123456\\789", 7, 7},
		{"01234567\x1f", 8, 8},
		{"0123456789<b>", 13, 10},
		{"a&b", 3, 1},
		{"caf\u00e9 au lait", 3, 3},
		{"\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f", 9, 9},
		{"        \x00", 8, 8},
		{"!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!~", 39, 39},
	} {
		if got := PlainString(c.s, false); got != c.want {
			t.Errorf("Plain(%q) = %d; want %d", c.s, got, c.want)
		}
		if got := Plain([]byte(c.s), true); got != c.html {
			t.Errorf("Plain(%q, html) = %d; want %d", c.s, got, c.html)
		}
	}
}

func FuzzPlain(f *testing.F) {
	for _, s := range []string{"", "0123456789abcdef\"", "a<b>&c\\d\x01\x80", "0123456\x7f\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{false, true} {
			if got, want := PlainString(s, html), plainByByte(s, html); got != want {
				t.Fatalf("PlainString(%q, %v) = %d; one byte at a time: %d", s, html, got, want)
			}
			if got, want := Plain([]byte(s), html), plainByByte(s, html); got != want {
				t.Fatalf("Plain([]byte(%q), %v) = %d; one byte at a time: %d", s, html, got, want)
			}
		}
	})
}

func BenchmarkPlain(b *testing.B) {
	s := "https://shop.example/product/sku-1?utm_source=bench&utm_medium=cpc&x=0123456789"
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if PlainString(s, false) != len(s) {
			b.Fatal("stopped early")
		}
	}
}

func BenchmarkPlainByByte(b *testing.B) {
	s := "https://shop.example/product/sku-1?utm_source=bench&utm_medium=cpc&x=0123456789"
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if plainByByte(s, false) != len(s) {
			b.Fatal("stopped early")
		}
	}
}
