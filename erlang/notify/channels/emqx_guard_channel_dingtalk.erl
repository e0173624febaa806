%% @doc The DingTalk channel: a custom robot's webhook
%% (`https://oapi.dingtalk.com/robot/send?access_token=...'), sent a markdown message. With the
%% robot's signing secret (`SEC...') set, the URL gets `timestamp' (Unix milliseconds) and
%% `sign': HMAC-SHA256 keyed with the secret over `timestamp + "\n" + secret', Base64, then
%% URL-encoded, as DingTalk documents it. People listed in `notify_dingtalk_at_mobiles' are
%% mentioned (`at.atMobiles' and `@<mobile>' in the text). DingTalk answers `errcode' 0 for
%% success, another with `errmsg' for a refusal (310000: signature, keyword or IP check,
%% 300001: bad token); 130101 (sending too fast) is tried again. The text is kept under 18000
%% bytes, cut to fit.
-module(emqx_guard_channel_dingtalk).

-behaviour(emqx_guard_channel).

-export([kind/0, settings/0, cli_names/0, enabled/1, target/1, deliver/4, text/2, sign/2]).

-define(MAX_BYTES, 18000).
-define(RETRY_CODES, [130101]).

%% @private
-spec kind() -> dingtalk.
kind() -> dingtalk.

%% @private
-spec settings() -> [emqx_guard_channel:setting()].
settings() ->
    [{notify_dingtalk_url, url, <<>>}, {notify_dingtalk_secret, secret, <<>>}, {notify_dingtalk_at_mobiles, mobiles, []}].

%% @private
-spec cli_names() -> [{binary(), atom()}].
cli_names() ->
    [{<<"url">>, notify_dingtalk_url}, {<<"secret">>, notify_dingtalk_secret}, {<<"at_mobiles">>, notify_dingtalk_at_mobiles}].

%% @doc Set up when the URL is set.
-spec enabled(map()) -> boolean().
enabled(Settings) ->
    emqx_guard_channel:setting(notify_dingtalk_url, Settings) =/= <<>>.

%% @doc `scheme://host/…'.
-spec target(map()) -> binary().
target(Settings) ->
    emqx_guard_channel:url_target(notify_dingtalk_url, Settings).

%% @doc One POST of the markdown message, to the signed URL when a secret is set.
-spec deliver(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), map(), map()) ->
    emqx_guard_channel:result().
deliver(Event, Facts, Settings, Opts) ->
    #{notify_dingtalk_url := Url0, notify_dingtalk_secret := Secret, notify_dingtalk_at_mobiles := Mobiles} =
        emqx_guard_notify_config:of_settings(Settings),
    Url =
        case Secret of
            <<>> ->
                Url0;
            _ ->
                Ts = integer_to_binary(erlang:system_time(millisecond)),
                Query = uri_string:compose_query([{<<"timestamp">>, Ts}, {<<"sign">>, sign(Ts, Secret)}]),
                Sep =
                    case binary:match(Url0, <<"?">>) of
                        nomatch -> <<"?">>;
                        _ -> <<"&">>
                    end,
                <<Url0/binary, Sep/binary, Query/binary>>
        end,
    Title = emqx_guard_notify_format:title(Event, Facts),
    Mentions = iolist_to_binary([[" @", M] || M <- Mobiles]),
    Build = fun(Text) ->
        #{
            msgtype => <<"markdown">>,
            markdown => #{title => <<"emqx_guard: ", Title/binary>>, text => <<Text/binary, Mentions/binary>>},
            at => #{atMobiles => Mobiles, isAtAll => false}
        }
    end,
    Doc = emqx_guard_channel:fit(Build, text(Event, Facts), ?MAX_BYTES),
    emqx_guard_channel:service_answer(emqx_guard_channel:post_json(Url, Doc, Settings, Opts),
        fun(B) -> emqx_guard_channel:coded_answer(B, <<"errcode">>, <<"errmsg">>, ?RETRY_CODES) end, <<"DingTalk">>).

%% @doc The signature of a request made at Timestamp (Unix milliseconds as text), Base64 (the
%% URL encoding is the query's).
-spec sign(binary(), binary()) -> binary().
sign(Timestamp, Secret) ->
    base64:encode(crypto:mac(hmac, sha256, Secret, <<Timestamp/binary, "\n", Secret/binary>>)).

%% @doc The markdown text: the title as a heading, a list item per fact, the restore command
%% as code.
-spec text(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts()) -> binary().
text(Event, Facts) ->
    Lines = [["- **", L, ":** ", V, "\n"] || {L, V} <- emqx_guard_notify_format:lines(Event, Facts)],
    Restore =
        case emqx_guard_notify_format:restore(Event, Facts) of
            undefined -> [];
            Cmd -> ["\nTo restore this backup, run on its node: `", Cmd, "`\n"]
        end,
    iolist_to_binary(["### emqx_guard: ", emqx_guard_notify_format:title(Event, Facts), "\n\n", Lines, Restore]).
