package pinteresttest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// kind is the JSON type a schema field takes.
type kind int

const (
	kString kind = iota + 1
	kInteger
	kBoolean
	kStrings // an array of strings
	kObject  // an object described by fields (nil fields: any object)
	kObjects // an array of objects described by fields
)

// field is one property of an object of Pinterest's request schema.
type field struct {
	kind     kind
	required bool
	nullable bool
	fields   map[string]field
}

// The request schema of POST /v5/ad_accounts/{ad_account_id}/events
// (ConversionEvents, v5.23): every object has additionalProperties false.
var (
	contentFields = map[string]field{
		"id": {kind: kString}, "item_brand": {kind: kString}, "item_category": {kind: kString},
		"item_name": {kind: kString}, "item_price": {kind: kString}, "quantity": {kind: kInteger},
	}
	customFields = map[string]field{
		"content_brand": {kind: kString, nullable: true}, "content_category": {kind: kString, nullable: true},
		"content_ids": {kind: kStrings}, "content_name": {kind: kString, nullable: true},
		"contents": {kind: kObjects, fields: contentFields}, "currency": {kind: kString, nullable: true},
		"external_measurement_id": {kind: kString, nullable: true}, "external_measurement_vendor_id": {kind: kInteger, nullable: true},
		"np": {kind: kString, nullable: true}, "num_items": {kind: kInteger}, "opt_out_type": {kind: kString, nullable: true},
		"order_id": {kind: kString, nullable: true}, "predicted_ltv": {kind: kString, nullable: true},
		"search_string": {kind: kString, nullable: true}, "value": {kind: kString, nullable: true},
	}
	userFields = map[string]field{
		"em": {kind: kStrings}, "ph": {kind: kStrings}, "ge": {kind: kStrings}, "db": {kind: kStrings},
		"ln": {kind: kStrings}, "fn": {kind: kStrings}, "ct": {kind: kStrings}, "st": {kind: kStrings},
		"zp": {kind: kStrings}, "country": {kind: kStrings}, "external_id": {kind: kStrings},
		"hashed_maids": {kind: kStrings}, "client_ip_address": {kind: kString}, "client_user_agent": {kind: kString},
		"click_id": {kind: kString, nullable: true}, "partner_id": {kind: kString, nullable: true},
	}
	eventFields = map[string]field{
		"action_source": {kind: kString, required: true}, "event_name": {kind: kString, required: true},
		"event_time": {kind: kInteger, required: true}, "event_id": {kind: kString, required: true},
		"user_data":        {kind: kObject, required: true, fields: userFields},
		"custom_data":      {kind: kObject, fields: customFields},
		"event_source_url": {kind: kString, nullable: true}, "opt_out": {kind: kBoolean},
		"partner_name": {kind: kString, nullable: true}, "language": {kind: kString, nullable: true},
		"app_id": {kind: kString, nullable: true}, "app_name": {kind: kString, nullable: true},
		"app_version": {kind: kString, nullable: true}, "device_brand": {kind: kString, nullable: true},
		"device_carrier": {kind: kString, nullable: true}, "device_model": {kind: kString, nullable: true},
		"device_type": {kind: kString, nullable: true}, "os_version": {kind: kString, nullable: true},
		"wifi": {kind: kBoolean}, "app_info": {kind: kObject}, "device_info": {kind: kObject},
	}
)

// checkObject checks obj against fields, naming the first problem by its
// path.
func checkObject(path string, obj map[string]any, fields map[string]field) error {
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		f, ok := fields[k]
		if !ok {
			return fmt.Errorf("%s: Additional properties are not allowed (%q was unexpected)", path, k)
		}
		if err := checkValue(path+"."+k, obj[k], f); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if _, present := obj[k]; fields[k].required && !present {
			return fmt.Errorf("%s: %q is a required property", path, k)
		}
	}
	return nil
}

func checkValue(path string, v any, f field) error {
	if v == nil {
		if f.nullable {
			return nil
		}
		return fmt.Errorf("%s: None is not of type %s", path, typeName(f.kind))
	}
	switch f.kind {
	case kString:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %v is not of type 'string'", path, v)
		}
	case kInteger:
		n, ok := v.(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE") {
			return fmt.Errorf("%s: %v is not of type 'integer'", path, v)
		}
	case kBoolean:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %v is not of type 'boolean'", path, v)
		}
	case kStrings:
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %v is not of type 'array'", path, v)
		}
		for i, e := range list {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("%s[%d]: %v is not of type 'string'", path, i, e)
			}
		}
	case kObject:
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %v is not of type 'object'", path, v)
		}
		if f.fields != nil {
			return checkObject(path, obj, f.fields)
		}
	case kObjects:
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %v is not of type 'array'", path, v)
		}
		for i, e := range list {
			obj, ok := e.(map[string]any)
			if !ok {
				return fmt.Errorf("%s[%d]: %v is not of type 'object'", path, i, e)
			}
			if err := checkObject(fmt.Sprintf("%s[%d]", path, i), obj, f.fields); err != nil {
				return err
			}
		}
	}
	return nil
}

func typeName(k kind) string {
	switch k {
	case kString:
		return "'string'"
	case kInteger:
		return "'integer'"
	case kBoolean:
		return "'boolean'"
	case kObject:
		return "'object'"
	}
	return "'array'"
}
