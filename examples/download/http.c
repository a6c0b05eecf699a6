/* Pages and the little HTTP/1.1 both sides speak: one GET per connection
 * (Connection: close), a Content-Length, nothing else. */
#define _GNU_SOURCE /* memmem, strncasecmp */

#include "download.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A page's body, 16 bytes at a time: the hex digits of a 64-bit value made
 * from the page number and the block's index. The multiplier is odd, so two
 * different (page, block) pairs never give the same block. */
static uint64_t
block(uint32_t page, uint64_t index)
{
    return (((uint64_t)page << 32) + index) * UINT64_C(0x9E3779B97F4A7C15);
}

void
page_fill(uint32_t page, uint64_t off, char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;

    while (j < len) {
        uint64_t v = block(page, (off + j) / 16);

        for (unsigned d = (unsigned)((off + j) % 16); d < 16 && j < len;
             d++, j++) {
            buf[j] = hex[(v >> (60 - 4 * d)) & 15];
        }
    }
}

bool
page_check(uint32_t page, uint64_t off, const char *buf, size_t len)
{
    char want[256];

    for (size_t j = 0, n; j < len; j += n) {
        n = len - j < sizeof want ? len - j : sizeof want;
        page_fill(page, off + j, want, n);
        if (memcmp(buf + j, want, n) != 0) {
            return false;
        }
    }
    return true;
}

size_t
http_request(uint32_t page, char *buf)
{
    int n = snprintf(buf, HTTP_HEAD_MAX,
                     "GET /page/%" PRIu32 " HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n",
                     page);

    return (size_t)n;
}

/* Parses "/page/<i> " at p (a page number below 2^32); NULL if it is not
 * one, else where the space is. */
static const char *
page_path(const char *p, uint32_t *page)
{
    uint64_t v = 0;
    const char *d = p + 6;

    if (strncmp(p, "/page/", 6) != 0 || *d < '0' || *d > '9') {
        return NULL;
    }
    for (; *d >= '0' && *d <= '9'; d++) {
        v = v * 10 + (uint64_t)(*d - '0');
        if (v > UINT32_MAX) {
            return NULL;
        }
    }
    *page = (uint32_t)v;
    return *d == ' ' ? d : NULL;
}

size_t
http_respond(const char *req, size_t n, uint64_t page_bytes, char *out,
             uint32_t *page, uint64_t *body)
{
    const char *status = "400 Bad Request";
    const char *end;
    char line[HTTP_HEAD_MAX];
    const char *eol = memmem(req, n, "\r\n", 2);
    size_t len = eol != NULL ? (size_t)(eol - req) : n;

    /* The request line alone, as a string. */
    memcpy(line, req, len < sizeof line ? len : sizeof line - 1);
    line[len < sizeof line ? len : sizeof line - 1] = '\0';
    *body = 0;
    if (strncmp(line, "GET ", 4) == 0) {
        end = page_path(line + 4, page);
        if (end == NULL) {
            status = "404 Not Found";
        } else if (strcmp(end, " HTTP/1.1") == 0 ||
                   strcmp(end, " HTTP/1.0") == 0) {
            status = "200 OK";
            *body = page_bytes;
        }
    }
    return (size_t)snprintf(out, HTTP_HEAD_MAX,
                            "HTTP/1.1 %s\r\n"
                            "Content-Type: text/plain\r\n"
                            "Content-Length: %" PRIu64 "\r\n"
                            "Connection: close\r\n\r\n",
                            status, *body);
}

void
http_resp_init(struct http_resp *r, uint32_t page, uint64_t want)
{
    memset(r, 0, sizeof *r);
    r->page = page;
    r->want = want;
}

/* Checks the complete header in r->head and takes its Content-Length. */
static const char *
parse_head(struct http_resp *r)
{
    const char *p;

    if (strncmp(r->head, "HTTP/1.1 200 ", 13) != 0 &&
        strncmp(r->head, "HTTP/1.0 200 ", 13) != 0) {
        return "the status is not 200";
    }
    for (p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0) {
            char *end;

            r->length = strtoull(p + 17, &end, 10);
            if (end == p + 17 || (*end != '\r' && *end != ' ')) {
                return "a malformed Content-Length";
            }
            r->in_body = true;
            return NULL;
        }
    }
    return "no Content-Length";
}

const char *
http_resp_feed(struct http_resp *r, const char *buf, size_t n)
{
    const char *err;

    /* The header, a byte at a time until its blank line. */
    while (!r->in_body && n > 0) {
        if (r->nhead == HTTP_HEAD_MAX) {
            return "a header too long";
        }
        r->head[r->nhead++] = *buf++;
        n--;
        if (r->nhead >= 4 &&
            memcmp(r->head + r->nhead - 4, "\r\n\r\n", 4) == 0) {
            r->head[r->nhead] = '\0';
            if ((err = parse_head(r)) != NULL) {
                return err;
            }
        }
    }
    if (n > r->length - r->got) {
        return "more body than the Content-Length";
    }
    if (!page_check(r->page, r->got, buf, n)) {
        return "body bytes that are not the page's";
    }
    r->got += n;
    return NULL;
}

const char *
http_resp_end(const struct http_resp *r)
{
    if (!r->in_body) {
        return "the connection closed before the header ended";
    }
    if (r->length != r->want) {
        return "a Content-Length other than the page size";
    }
    return r->got == r->length ? NULL
                               : "the connection closed before the body ended";
}
