%% @doc The WeCom (WeChat Work) channel: a group robot's webhook
%% (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...'), sent a markdown message. WeCom
%% answers `errcode' 0 for success, another with `errmsg' for a refusal (93000: invalid webhook
%% URL); 45009 (over the rate limit) is tried again. The markdown content is at most 4096 bytes
%% of UTF-8, cut to fit.
-module(emqx_guard_channel_wecom).

-behaviour(emqx_guard_channel).

-export([kind/0, settings/0, cli_names/0, enabled/1, target/1, deliver/4, text/2]).

-define(MAX_CONTENT, 4096).
-define(RETRY_CODES, [45009]).

%% @private
-spec kind() -> wecom.
kind() -> wecom.

%% @private
-spec settings() -> [emqx_guard_channel:setting()].
settings() ->
    [{notify_wecom_url, url, <<>>}].

%% @private
-spec cli_names() -> [{binary(), atom()}].
cli_names() ->
    [{<<"url">>, notify_wecom_url}].

%% @doc Set up when the URL is set.
-spec enabled(map()) -> boolean().
enabled(Settings) ->
    emqx_guard_channel:setting(notify_wecom_url, Settings) =/= <<>>.

%% @doc `scheme://host/…'.
-spec target(map()) -> binary().
target(Settings) ->
    emqx_guard_channel:url_target(notify_wecom_url, Settings).

%% @doc One POST of the markdown message.
-spec deliver(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), map(), map()) ->
    emqx_guard_channel:result().
deliver(Event, Facts, Settings, Opts) ->
    Content = emqx_guard_notify_format:cut(text(Event, Facts), ?MAX_CONTENT),
    Doc = #{msgtype => <<"markdown">>, markdown => #{content => Content}},
    Url = emqx_guard_channel:setting(notify_wecom_url, Settings),
    emqx_guard_channel:service_answer(emqx_guard_channel:post_json(Url, Doc, Settings, Opts),
        fun(B) -> emqx_guard_channel:coded_answer(B, <<"errcode">>, <<"errmsg">>, ?RETRY_CODES) end, <<"WeCom">>).

%% @doc The markdown content: the title in bold (orange for a failure or a missing backup), a
%% quoted line per fact, the restore command as code.
-spec text(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts()) -> binary().
text(Event, Facts) ->
    Title = emqx_guard_notify_format:title(Event, Facts),
    Head =
        case Event of
            E when E =:= backup_failed; E =:= dead_man; E =:= offsite_failed -> ["**<font color=\"warning\">emqx_guard: ", Title, "</font>**\n"];
            _ -> ["**emqx_guard: ", Title, "**\n"]
        end,
    Lines = [["> ", L, ": ", V, "\n"] || {L, V} <- emqx_guard_notify_format:lines(Event, Facts)],
    Restore =
        case emqx_guard_notify_format:restore(Event, Facts) of
            undefined -> [];
            Cmd -> ["To restore this backup, run on its node: `", Cmd, "`\n"]
        end,
    iolist_to_binary([Head, Lines, Restore]).

