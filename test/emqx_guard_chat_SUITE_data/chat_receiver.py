#!/usr/bin/env python3
"""Stand-ins for the chat services on 127.0.0.1 for emqx_guard_chat_SUITE (Python stdlib only).

Usage: chat_receiver.py --out DIR [--slack-token T] [--slack-channel C] [--feishu-secret S]
                        [--dingtalk-token T] [--dingtalk-secret S] [--wecom-key K]
                        [--script SERVICE=ANSWER,ANSWER,...]...

Listens on a free port of 127.0.0.1 and prints "PORT <n>" once it accepts connections. Each
service is reached under the path its public documentation gives:

  slack_webhook  POST /services/<T>/<B>/<secret>        incoming webhook: {"text": ...}
  slack_api      POST /api/chat.postMessage              Bearer token, {"channel", "text"}
  teams          POST /workflows/<id>/triggers/manual/paths/invoke?...   Adaptive Card message
  feishu         POST /open-apis/bot/v2/hook/<id>        {"msg_type":"text", ...} (+ signature)
  dingtalk       POST /robot/send?access_token=...       markdown (+ timestamp/sign query)
  wecom          POST /cgi-bin/webhook/send?key=...      markdown, content <= 4096 bytes
  webhook        POST /hook/<anything>                   emqx_guard's own webhook document
                                                         ({"source": "emqx_guard", "event": ...})

Every request is checked as the service checks it (method, path, content type, JSON shape,
token or key, signature recomputed from the secret, timestamp within an hour) and answered as
the service answers: its success body, or its documented error (HTTP status and the service's
own code and message). --script SERVICE=A,B,... answers the first requests of SERVICE with A, B,
... instead, each "429/S" (429 with Retry-After: S), "500", "503" or any status. Every request is
written to DIR as <n>.json (temporary name, then renamed): service, path, query, headers, json
(the decoded body), received_ms, verdict ("ok" or what was wrong), status and answer.
The server exits when its standard input closes (the test's port closing).
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse


def feishu_sign(ts, secret):
    key = ("%s\n%s" % (ts, secret)).encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def dingtalk_sign(ts, secret):
    mac = hmac.new(secret.encode(), ("%s\n%s" % (ts, secret)).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def within_an_hour(ts_seconds):
    return abs(time.time() - ts_seconds) <= 3600


class Problem(Exception):
    """A request the service refuses: HTTP status, body (dict for JSON, str for text)."""

    def __init__(self, status, body, verdict):
        super().__init__(verdict)
        self.status, self.body, self.verdict = status, body, verdict


def check_slack_webhook(args, path, query, headers, doc):
    if not isinstance(doc, dict):
        raise Problem(400, "invalid_payload", "body is not a JSON object")
    if not isinstance(doc.get("text"), str) or not doc["text"]:
        raise Problem(400, "no_text", "no text")
    return 200, "ok"


def check_slack_api(args, path, query, headers, doc):
    if headers.get("authorization") != "Bearer " + (args.slack_token or ""):
        raise Problem(200, {"ok": False, "error": "invalid_auth"}, "wrong token")
    if not isinstance(doc, dict) or not isinstance(doc.get("text"), str) or not doc["text"]:
        raise Problem(200, {"ok": False, "error": "no_text"}, "no text")
    if doc.get("channel") != args.slack_channel:
        raise Problem(200, {"ok": False, "error": "channel_not_found"}, "unknown channel")
    return 200, {"ok": True, "channel": doc["channel"], "ts": "1767319445.000100"}


def check_teams(args, path, query, headers, doc):
    bad = Problem(400, {"error": {"code": "InvalidRequestContent",
                                  "message": "The input body for trigger 'manual' of type 'Request' did not match its schema definition."}},
                  "not an Adaptive Card message")
    if not isinstance(doc, dict) or doc.get("type") != "message":
        raise bad
    atts = doc.get("attachments")
    if not isinstance(atts, list) or len(atts) != 1:
        raise bad
    att = atts[0]
    card = att.get("content") if isinstance(att, dict) else None
    if att.get("contentType") != "application/vnd.microsoft.card.adaptive" or not isinstance(card, dict):
        raise bad
    if card.get("type") != "AdaptiveCard" or not isinstance(card.get("body"), list) or not card["body"]:
        raise bad
    if len(json.dumps(doc).encode()) > 28 * 1024:
        raise Problem(413, {"error": {"code": "MessageTooLarge", "message": "too large"}}, "over 28 KB")
    return 202, ""


def check_feishu(args, path, query, headers, doc):
    if not isinstance(doc, dict) or doc.get("msg_type") != "text" or \
            not isinstance(doc.get("content"), dict) or not isinstance(doc["content"].get("text"), str):
        raise Problem(200, {"code": 9499, "msg": "Bad Request", "data": {}}, "not a text message")
    if args.feishu_secret:
        ts, sign = doc.get("timestamp"), doc.get("sign")
        refused = Problem(200, {"code": 19021, "data": {},
                                "msg": "sign match fail or timestamp is not within one hour from current time"},
                          "bad signature")
        if not isinstance(ts, str) or not ts.isdigit() or not within_an_hour(int(ts)):
            raise refused
        if not hmac.compare_digest(str(sign), feishu_sign(ts, args.feishu_secret)):
            raise refused
    if len(json.dumps(doc).encode()) > 20 * 1024:
        raise Problem(200, {"code": 9499, "msg": "request body too large", "data": {}}, "over 20 KB")
    return 200, {"code": 0, "data": {}, "msg": "success"}


def check_dingtalk(args, path, query, headers, doc):
    if query.get("access_token") != [args.dingtalk_token]:
        raise Problem(200, {"errcode": 300001, "errmsg": "token is not exist"}, "wrong access_token")
    if args.dingtalk_secret:
        ts, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
        refused = Problem(200, {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"},
                          "bad signature")
        if not ts.isdigit() or not within_an_hour(int(ts) / 1000):
            raise refused
        if not hmac.compare_digest(sign, dingtalk_sign(ts, args.dingtalk_secret)):
            raise refused
    md = doc.get("markdown") if isinstance(doc, dict) else None
    if doc.get("msgtype") != "markdown" or not isinstance(md, dict) or \
            not isinstance(md.get("title"), str) or not isinstance(md.get("text"), str):
        raise Problem(200, {"errcode": 40035, "errmsg": "缺少参数 json"}, "not a markdown message")
    at = doc.get("at", {})
    if not isinstance(at.get("atMobiles", []), list):
        raise Problem(200, {"errcode": 40035, "errmsg": "bad at"}, "bad at")
    return 200, {"errcode": 0, "errmsg": "ok"}


def check_wecom(args, path, query, headers, doc):
    if query.get("key") != [args.wecom_key]:
        raise Problem(200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [1767319445_1], more info at https://open.work.weixin.qq.com/devtool/query?e=93000"},
                      "wrong key")
    md = doc.get("markdown") if isinstance(doc, dict) else None
    if doc.get("msgtype") != "markdown" or not isinstance(md, dict) or not isinstance(md.get("content"), str):
        raise Problem(200, {"errcode": 40008, "errmsg": "invalid message type"}, "not a markdown message")
    if len(md["content"].encode()) > 4096:
        raise Problem(200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}, "over 4096 bytes")
    return 200, {"errcode": 0, "errmsg": "ok"}


def check_webhook(args, path, query, headers, doc):
    if not isinstance(doc, dict) or doc.get("source") != "emqx_guard":
        raise Problem(400, {"error": "not an emqx_guard document"}, "not an emqx_guard document")
    if not isinstance(doc.get("event"), str) or not doc["event"]:
        raise Problem(400, {"error": "no event"}, "no event")
    return 200, {"ok": True}


def route(path):
    parts = path.split("/")
    if path.startswith("/services/") and len(parts) == 5:
        return "slack_webhook", check_slack_webhook
    if path == "/api/chat.postMessage":
        return "slack_api", check_slack_api
    if path.startswith("/workflows/") and path.endswith("/triggers/manual/paths/invoke"):
        return "teams", check_teams
    if path.startswith("/open-apis/bot/v2/hook/"):
        return "feishu", check_feishu
    if path == "/robot/send":
        return "dingtalk", check_dingtalk
    if path == "/cgi-bin/webhook/send":
        return "wecom", check_wecom
    if path.startswith("/hook/"):
        return "webhook", check_webhook
    return None, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        srv = self.server
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self.rfile.read(int(headers.get("content-length", "0")))
        service, check = route(url.path)
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError:
            doc = None
        extra = {}
        try:
            if service is None:
                raise Problem(404, "no_service", "unknown path")
            if not headers.get("content-type", "").startswith("application/json"):
                raise Problem(400, "invalid_payload", "content type is not application/json")
            if doc is None:
                raise Problem(400, "invalid_payload", "body is not JSON")
            with srv.lock:
                scripted = srv.script.get(service, [])
                answer = scripted.pop(0) if scripted else None
            if answer is not None:
                status, _, wait = answer.partition("/")
                if wait:
                    extra["Retry-After"] = wait
                raise Problem(int(status), {"error": "scripted"} if service != "slack_webhook" else "scripted",
                              "scripted " + answer)
            status, body = check(srv.args, url.path, query, headers, doc)
            verdict = "ok"
        except Problem as p:
            status, body, verdict = p.status, p.body, p.verdict
        if isinstance(body, (dict, list)):
            out, ctype = json.dumps(body, ensure_ascii=False).encode(), "application/json; charset=utf-8"
        else:
            out, ctype = body.encode(), "text/plain; charset=utf-8"
        with srv.lock:
            srv.count += 1
            n = srv.count
        record = {"service": service, "path": url.path, "query": query, "headers": headers,
                  "json": doc, "verdict": verdict, "status": status,
                  "answer": out.decode(), "received_ms": int(time.time() * 1000)}
        tmp = os.path.join(srv.out_dir, ".%d.tmp" % n)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(tmp, os.path.join(srv.out_dir, "%d.json" % n))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(out)


def exit_on_stdin_eof():
    sys.stdin.read()
    os._exit(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--slack-token")
    p.add_argument("--slack-channel")
    p.add_argument("--feishu-secret")
    p.add_argument("--dingtalk-token")
    p.add_argument("--dingtalk-secret")
    p.add_argument("--wecom-key")
    p.add_argument("--script", action="append", default=[])
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.args, srv.out_dir, srv.count, srv.lock = args, args.out, 0, threading.Lock()
    srv.script = {}
    for s in args.script:
        service, _, answers = s.partition("=")
        srv.script[service] = [a for a in answers.split(",") if a]
    print("PORT %d" % srv.server_address[1], flush=True)
    threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
