%% @doc The Feishu (Lark) channel: a custom bot's webhook
%% (`https://open.feishu.cn/open-apis/bot/v2/hook/...', Lark: `open.larksuite.com'), sent a
%% text message. With the bot's signing secret set, each request carries `timestamp' (Unix
%% seconds, as text) and `sign': the Base64 of an HMAC-SHA256 keyed with
%% `timestamp + "\n" + secret' over an empty message, as Feishu documents it. Feishu answers
%% HTTP 200 with `code' 0 for success, another code with `msg' for a refusal (19021: bad
%% signature or timestamp, 19024: keyword or IP check); 9499 and 11232 mean too many requests
%% and are tried again. Requests are kept under 20 KB (Feishu's limit), the text cut to fit.
-module(emqx_guard_channel_feishu).

-behaviour(emqx_guard_channel).

-export([kind/0, settings/0, cli_names/0, enabled/1, target/1, deliver/4, text/2, sign/2]).

-define(MAX_BYTES, 19000).
-define(RETRY_CODES, [9499, 11232]).

%% @private
-spec kind() -> feishu.
kind() -> feishu.

%% @private
-spec settings() -> [emqx_guard_channel:setting()].
settings() ->
    [{notify_feishu_url, url, <<>>}, {notify_feishu_secret, secret, <<>>}].

%% @private
-spec cli_names() -> [{binary(), atom()}].
cli_names() ->
    [{<<"url">>, notify_feishu_url}, {<<"secret">>, notify_feishu_secret}].

%% @doc Set up when the URL is set.
-spec enabled(map()) -> boolean().
enabled(Settings) ->
    emqx_guard_channel:setting(notify_feishu_url, Settings) =/= <<>>.

%% @doc `scheme://host/…'.
-spec target(map()) -> binary().
target(Settings) ->
    emqx_guard_channel:url_target(notify_feishu_url, Settings).

%% @doc One POST of the (signed) text message.
-spec deliver(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), map(), map()) ->
    emqx_guard_channel:result().
deliver(Event, Facts, Settings, Opts) ->
    #{notify_feishu_url := Url, notify_feishu_secret := Secret} = emqx_guard_notify_config:of_settings(Settings),
    Signed =
        case Secret of
            <<>> ->
                #{};
            _ ->
                Ts = integer_to_binary(erlang:system_time(second)),
                #{timestamp => Ts, sign => sign(Ts, Secret)}
        end,
    Build = fun(Text) -> Signed#{msg_type => <<"text">>, content => #{text => Text}} end,
    Doc = emqx_guard_channel:fit(Build, text(Event, Facts), ?MAX_BYTES),
    emqx_guard_channel:service_answer(emqx_guard_channel:post_json(Url, Doc, Settings, Opts),
        fun(B) -> emqx_guard_channel:coded_answer(B, <<"code">>, <<"msg">>, ?RETRY_CODES) end, <<"Feishu">>).

%% @doc The signature of a request made at Timestamp (Unix seconds as text).
-spec sign(binary(), binary()) -> binary().
sign(Timestamp, Secret) ->
    base64:encode(crypto:mac(hmac, sha256, <<Timestamp/binary, "\n", Secret/binary>>, <<>>)).

%% @doc The message: the title, a line per fact, the restore command.
-spec text(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts()) -> binary().
text(Event, Facts) ->
    Lines = [[L, ": ", V, "\n"] || {L, V} <- emqx_guard_notify_format:lines(Event, Facts)],
    Restore =
        case emqx_guard_notify_format:restore(Event, Facts) of
            undefined -> [];
            Cmd -> ["To restore this backup, run on its node:\n", Cmd, "\n"]
        end,
    iolist_to_binary(["emqx_guard: ", emqx_guard_notify_format:title(Event, Facts), "\n", Lines, Restore]).
