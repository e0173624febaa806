%% @doc The notification channel behaviour, the list of channels, and what the HTTP channels
%% share.
%%
%% A channel is one way a notification reaches people: `email' (SMTP through the NIF),
%% `webhook' (a generic JSON POST), and the chat services `slack', `teams', `feishu',
%% `dingtalk', `wecom'. Each is a module `emqx_guard_channel_<kind>' that implements:
%% <ul>
%% <li>`kind/0': its name (the `notify_<kind>' command, the status line);</li>
%% <li>`settings/0': its own settings, `{Key, Type, Default}' (the types are
%%     `emqx_guard_value''s, checked there and hidden by `emqx_guard_redact'), and `cli_names/0':
%%     the `key=value' names of `guard notify_<kind>';</li>
%% <li>`enabled/1': whether the settings make it send;</li>
%% <li>`target/1': where it sends, safe to print and log (no secret, no URL path);</li>
%% <li>`deliver/4': one attempt, `{ok, Answer}', `{retry, Why}', `{retry, Why, AfterMs}'
%%     (the service asked for that wait) or `{error, Why}' (the operator has to fix something);
%%     Answer and Why are the service's own answer as one line.</li>
%% </ul>
%% `emqx_guard_notify' holds one sender per channel, `emqx_guard_notify_sender' runs its
%% attempts (retries, backoff); the wording comes from `emqx_guard_notify_format'.
-module(emqx_guard_channel).

-export([kinds/0, module/1, parse_kind/1, enabled/1, setting/2, url_target/2, post_json/4, post_json/5, post/5, service_answer/3, coded_answer/4, fit/3, snippet/1]).

-type kind() :: email | webhook | slack | teams | feishu | dingtalk | wecom.
-type result() :: {ok, binary()} | {retry, binary()} | {retry, binary(), pos_integer()} | {error, binary()}.
-type setting() :: {atom(), emqx_guard_value:type(), term()}.
-export_type([kind/0, result/0, setting/0]).

-callback kind() -> kind().
-callback settings() -> [setting()].
-callback cli_names() -> [{binary(), atom()}].
-callback enabled(Settings :: map()) -> boolean().
-callback target(Settings :: map()) -> binary().
-callback deliver(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), Settings :: map(), Opts :: map()) ->
    result().

%% @doc Every channel kind, in display order.
-spec kinds() -> [kind()].
kinds() ->
    [email, webhook, slack, teams, feishu, dingtalk, wecom].

%% @doc The module of a channel kind.
-spec module(kind()) -> module().
module(email) -> emqx_guard_channel_email;
module(webhook) -> emqx_guard_channel_webhook;
module(slack) -> emqx_guard_channel_slack;
module(teams) -> emqx_guard_channel_teams;
module(feishu) -> emqx_guard_channel_feishu;
module(dingtalk) -> emqx_guard_channel_dingtalk;
module(wecom) -> emqx_guard_channel_wecom.

%% @doc The kind named by Text (`lark' is Feishu's international name).
-spec parse_kind(binary()) -> {ok, kind()} | error.
parse_kind(Text) ->
    case [K || K <- kinds(), atom_to_binary(K) =:= string:lowercase(Text)] of
        [K] -> {ok, K};
        [] when Text =:= <<"lark">> -> {ok, feishu};
        [] -> error
    end.

%% @doc The kinds the settings make send.
-spec enabled(map()) -> [kind()].
enabled(Settings) ->
    [K || K <- kinds(), (module(K)):enabled(Settings)].

%% @doc The value of a `notify_*' setting (its default when the settings do not have it).
-spec setting(atom(), map()) -> term().
setting(Key, Settings) ->
    maps:get(Key, emqx_guard_notify_config:of_settings(Settings)).

%% @doc The target of a channel that posts to the URL in setting Key: `scheme://host[:port]/…'.
-spec url_target(atom(), map()) -> binary().
url_target(Key, Settings) ->
    emqx_guard_redact:url(setting(Key, Settings)).

%% @doc POSTs the JSON document Doc to Url for a chat channel: refused without sending when the
%% URL is plain http to a host not allowed for it (`emqx_guard_notify_config:url_allowed/2').
-spec post_json(binary(), term(), map(), map()) ->
    {ok, emqx_guard_http:answer()} | {error, {retry | fatal, binary()}}.
post_json(Url, Doc, Settings, Opts) ->
    post_json(Url, Doc, Settings, Opts, []).

%% @doc `post_json/4' with extra request headers (e.g. `authorization').
-spec post_json(binary(), term(), map(), map(), [{string(), string()}]) ->
    {ok, emqx_guard_http:answer()} | {error, {retry | fatal, binary()}}.
post_json(Url, Doc, Settings, Opts, Headers) ->
    case emqx_guard_notify_config:url_allowed(Url, Settings) of
        ok -> post(Url, {<<"application/json; charset=utf-8">>, emqx_guard_json:encode(Doc)}, Headers, Settings, Opts);
        {error, {broken_rule, Line}} -> {error, {fatal, Line}}
    end.

%% @doc POSTs `{ContentType, Body}' to Url with the TLS settings (`notify_tls_verify',
%% `notify_ca_file') and the attempt's `timeout_ms'.
-spec post(binary(), {binary(), iodata()}, [{string(), string()}], map(), map()) ->
    {ok, emqx_guard_http:answer()} | {error, {retry | fatal, binary()}}.
post(Url, Content, Headers, Settings, Opts) ->
    S = emqx_guard_notify_config:of_settings(Settings),
    emqx_guard_http:post(Url, Content, Headers, #{
        timeout_ms => maps:get(timeout_ms, Opts, 30000),
        tls => #{verify => maps:get(notify_tls_verify, S), ca_file => maps:get(notify_ca_file, S)}
    }).

%% @doc The result of a chat service's answer to a POST (or of its failure): HTTP errors as
%% `emqx_guard_http:classify/2' says; a 2xx answer is read by Check (the service's own code),
%% which returns `ok', `{retry, Detail}' or `{error, Detail}'. The line shown is the HTTP status
%% with the service's code and message.
-spec service_answer(
    {ok, emqx_guard_http:answer()} | {error, {retry | fatal, binary()}},
    fun((binary()) -> {ok | retry | error, binary()}),
    binary()
) -> result().
service_answer({error, {retry, Line}}, _Check, _Name) ->
    {retry, Line};
service_answer({error, {fatal, Line}}, _Check, _Name) ->
    {error, Line};
service_answer({ok, #{body := Body} = A}, Check, Name) ->
    {Verdict, Detail} = Check(Body),
    Text = emqx_guard_http:status_text(A, Detail),
    case emqx_guard_http:classify(A, Text) of
        ok when Verdict =:= ok -> {ok, Text};
        ok when Verdict =:= retry -> {retry, <<Name/binary, " is busy: ", Text/binary>>};
        ok -> {error, <<Name/binary, " refused the message: ", Text/binary>>};
        Other -> Other
    end.

%% @doc Reads a chat service's JSON answer that carries its own code under CodeKey and a message
%% under MsgKey: code 0 is success, a code in RetryCodes is worth another try (the service is
%% busy), any other is an error; the detail is `CodeKey Code: Message'. A body without that
%% code is shown as it came (its start).
-spec coded_answer(binary(), binary(), binary(), [integer()]) -> {ok | retry | error, binary()}.
coded_answer(Body, CodeKey, MsgKey, RetryCodes) ->
    case emqx_guard_json:decode(Body) of
        {ok, #{CodeKey := Code} = M} when is_integer(Code) ->
            Msg =
                case maps:get(MsgKey, M, <<>>) of
                    T when is_binary(T), T =/= <<>> -> <<": ", T/binary>>;
                    _ -> <<>>
                end,
            Detail = <<CodeKey/binary, " ", (integer_to_binary(Code))/binary, Msg/binary>>,
            case Code of
                0 -> {ok, Detail};
                _ ->
                    case lists:member(Code, RetryCodes) of
                        true -> {retry, Detail};
                        false -> {error, Detail}
                    end
            end;
        _ ->
            {error, snippet(Body)}
    end.

%% @doc The document Build(Text) makes, with Text cut (`emqx_guard_notify_format:cut/2') until
%% the document's JSON is at most MaxBytes: a service's size limit is met with a marker, never
%% with a refused request.
-spec fit(fun((binary()) -> term()), binary(), pos_integer()) -> term().
fit(Build, Text, MaxBytes) ->
    Doc = Build(Text),
    Size = byte_size(emqx_guard_json:encode(Doc)),
    case Size =< MaxBytes orelse byte_size(Text) =< 64 of
        true -> Doc;
        false -> fit(Build, emqx_guard_notify_format:cut(Text, max(64, byte_size(Text) - (Size - MaxBytes))), MaxBytes)
    end.

%% @doc The start of an answer's body, on one line, for a status or log line.
-spec snippet(binary()) -> binary().
snippet(Body) ->
    Part = emqx_guard_notify_format:cut(Body, 200),
    iolist_to_binary(lists:join(<<" ">>, string:lexemes(Part, "\r\n"))).
