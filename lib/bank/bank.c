/*
 * bank.c: the typed entry points of the bank's ledger records (32..35).
 *
 * Why this exists: the bank, the CLI and the coin index read and write
 * credit, mint, redeem and refund bodies; their layouts (docs/LEDGER.md
 * 7.8-7.11) are tables in recspecs.c read by the one body codec
 * (recspec.c), and this file gives them their ig_bank.h names. The coin
 * crypto is coin.c, the coin index coins.c.
 */
#include "ig_bank.h"

#include "ig_record.h"
#include "ig_recspec.h"

#include <cJSON.h>
#include <stddef.h>

/* ---- records 32..35 ---------------------------------------------------------
 *
 * Their layouts are tables in recspecs.c, read by the one TLV codec
 * (recspec.c), so the bank's bodies follow exactly the rules of every other
 * record type. */

static const ig_body_spec *bank_body_for(uint16_t type)
{
	switch (type) {
	case IG_REC_CREDIT: return &ig_recspec_credit;
	case IG_REC_COIN_MINT: return &ig_recspec_mint;
	case IG_REC_COIN_REDEEM: return &ig_recspec_redeem;
	case IG_REC_COIN_REFUND: return &ig_recspec_refund;
	}
	return NULL;
}

int ig_bank_credit_encode(uint8_t *out, size_t cap, const ig_credit_rec *r)
{
	return r ? ig_recspec_encode(&ig_recspec_credit, r, out, cap) : IG_ERR_INVAL;
}

int ig_bank_credit_decode(const uint8_t *body, size_t len, ig_credit_rec *r, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_credit, body, len, r, err);
}

int ig_bank_mint_encode(uint8_t *out, size_t cap, const ig_mint_rec *r)
{
	return r ? ig_recspec_encode(&ig_recspec_mint, r, out, cap) : IG_ERR_INVAL;
}

int ig_bank_mint_decode(const uint8_t *body, size_t len, ig_mint_rec *r, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_mint, body, len, r, err);
}

int ig_bank_redeem_encode(uint8_t *out, size_t cap, const ig_redeem_rec *r)
{
	return r ? ig_recspec_encode(&ig_recspec_redeem, r, out, cap) : IG_ERR_INVAL;
}

int ig_bank_redeem_decode(const uint8_t *body, size_t len, ig_redeem_rec *r, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_redeem, body, len, r, err);
}

int ig_bank_refund_encode(uint8_t *out, size_t cap, const ig_refund_rec *r)
{
	return r ? ig_recspec_encode(&ig_recspec_refund, r, out, cap) : IG_ERR_INVAL;
}

int ig_bank_refund_decode(const uint8_t *body, size_t len, ig_refund_rec *r, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_refund, body, len, r, err);
}

/* ---- bank record queries ----------------------------------------------------- */

const char *ig_bank_record_type_name(uint16_t type)
{
	const ig_body_spec *b = bank_body_for(type);
	return b ? b->what : NULL;
}

int ig_bank_record_check(const ig_record *rec, ig_error *err)
{
	if (!rec)
		return IG_ERR_INVAL;
	const ig_body_spec *b = bank_body_for(rec->type);
	return b ? ig_recspec_check(b, rec->body, rec->body_len, err) : IG_OK;
}

int ig_bank_record_json(cJSON *obj, const ig_record *rec)
{
	if (!obj || !rec)
		return IG_ERR_INVAL;
	const ig_body_spec *b = bank_body_for(rec->type);
	if (!b)
		return IG_ERR_NOTFOUND;
	return ig_recspec_body_json(obj, b, rec->body, rec->body_len);
}
