%% @doc The `emqx ctl guard notify*' commands: show and set the notification settings, and send
%% a test message. `emqx_guard_cli' hands these arguments over; every failure prints one line
%% starting with `Error:' and changes nothing. Secrets are never printed (`******' when set,
%% URLs as `scheme://host/…').
%%
%% <ul>
%% <li>`guard notify': every notification setting and the last delivery on each channel;</li>
%% <li>`guard notify_smtp [key=value ...]' with keys `server', `port', `tls'
%%     (none | starttls | tls), `user', `password', `from', `verify' (on | off), `ca_file';
%%     `guard notify_smtp off' turns e-mail off (clears the server);</li>
%% <li>`guard notify_to [addr ...]': the recipients; `none' clears them;</li>
%% <li>`guard notify_webhook [url]': the webhook; `off' clears it;</li>
%% <li>`guard notify_slack|notify_teams|notify_feishu|notify_dingtalk|notify_wecom
%%     [key=value ...]' (a bare URL stands for `url=URL'); `off' clears the channel;</li>
%% <li>`guard notify_http_hosts [host ...]': hosts a chat channel may reach over plain http;</li>
%% <li>`guard notify_on [failure=on|off] [success=on|off] [dead_man=on|off]
%%     [offsite_failed=on|off] [offsite_ok=on|off]';</li>
%% <li>`guard notify_test [channel]': sends a test message on one or every configured channel
%%     and prints, per channel, what the service answered.</li>
%% </ul>
-module(emqx_guard_notify_cli).

-import(emqx_guard_cli, [line/1, error_line/1, error_reason/1]).

-export([cmd/1, usage_lines/0, show_lines/1, delivery_line/2]).

-define(CHAT, [slack, teams, feishu, dingtalk, wecom]).

%% @doc Handles `Args' (binaries, the first one the command) if it is a notify command.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"notify">>]) ->
    show_all();
cmd([<<"notify_smtp">>]) ->
    show(smtp_keys());
cmd([<<"notify_smtp">>, <<"off">>]) ->
    set(#{notify_smtp_server => <<>>}, smtp_keys());
cmd([<<"notify_smtp">> | Pairs]) ->
    with_changes(email, Pairs, smtp_keys());
cmd([<<"notify_to">>]) ->
    show([notify_to]);
cmd([<<"notify_to">>, None]) when None =:= <<"none">>; None =:= <<"off">> ->
    set(#{notify_to => []}, [notify_to]);
cmd([<<"notify_to">> | Addrs]) ->
    set(#{notify_to => Addrs}, [notify_to]);
cmd([<<"notify_webhook">>]) ->
    show([notify_webhook_url]);
cmd([<<"notify_webhook">>, Off]) when Off =:= <<"off">>; Off =:= <<"none">> ->
    set(#{notify_webhook_url => <<>>}, [notify_webhook_url]);
cmd([<<"notify_webhook">>, Url]) ->
    set(#{notify_webhook_url => Url}, [notify_webhook_url]);
cmd([<<"notify_http_hosts">>]) ->
    show([notify_http_hosts]);
cmd([<<"notify_http_hosts">>, None]) when None =:= <<"none">>; None =:= <<"off">> ->
    set(#{notify_http_hosts => []}, [notify_http_hosts]);
cmd([<<"notify_http_hosts">> | Hosts]) ->
    set(#{notify_http_hosts => Hosts}, [notify_http_hosts]);
cmd([<<"notify_on">>]) ->
    show(on_keys());
cmd([<<"notify_on">> | Pairs]) ->
    case on_changes(Pairs, #{}) of
        {ok, Changes} -> set(Changes, on_keys());
        {error, Why} -> error_reason(Why)
    end;
cmd([<<"notify_test">>]) ->
    notify_test(all);
cmd([<<"notify_test">>, Name]) ->
    case emqx_guard_channel:parse_kind(Name) of
        {ok, Kind} -> notify_test(Kind);
        error -> error_line(["unknown channel \"", Name, "\" (use ", kind_list(emqx_guard_channel:kinds(), ""), ")"])
    end;
cmd([<<"notify_", Name/binary>> | Args]) ->
    case emqx_guard_channel:parse_kind(Name) of
        {ok, Kind} -> chat(Kind, Args);
        error -> error_line(["unknown channel \"", Name, "\" (use notify_smtp, ", kind_list([K || K <- emqx_guard_channel:kinds(), K =/= email], "notify_"), ")"])
    end;
cmd(_) ->
    not_mine.

%% @doc The usage list in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [
        {"guard notify", "Show the notification settings and the last deliveries"},
        {"guard notify_smtp [key=value ...]",
            "Show or set e-mail: server port tls=none|starttls|tls user password from verify=on|off ca_file; 'off' disables"},
        {"guard notify_to [<addr> ...]", "Show or set the e-mail recipients ('none' clears)"},
        {"guard notify_webhook [<url>]", "Show or set the webhook URL (HTTP(S) POST of JSON; 'off' clears)"},
        {"guard notify_slack [url=<url>] [token=<xoxb-..> channel=<id>]",
            "Show or set Slack: an incoming-webhook URL, or a bot token and channel; 'off' clears"},
        {"guard notify_teams [url=<url>]", "Show or set the Microsoft Teams Workflows webhook URL; 'off' clears"},
        {"guard notify_feishu [url=<url>] [secret=<secret>]", "Show or set the Feishu/Lark bot webhook and signing secret; 'off' clears"},
        {"guard notify_dingtalk [url=<url>] [secret=<secret>] [at_mobiles=<n,..>]",
            "Show or set the DingTalk robot webhook, signing secret and people to @; 'off' clears"},
        {"guard notify_wecom [url=<url>]", "Show or set the WeCom group robot webhook URL; 'off' clears"},
        {"guard notify_http_hosts [<host> ...]", "Show or set hosts chat channels may reach over plain http ('none' clears)"},
        {"guard notify_on [<event>=on|off ...]",
            "Show or set when to notify: failure, success, dead_man, offsite_failed, offsite_ok (default: all on except success)"},
        {"guard notify_test [<channel>]", "Send a test message now and print what each service answered"}
    ].

%% @doc `key = value' lines for the given keys, secrets hidden.
-spec show_lines([emqx_guard_notify_config:key()]) -> [binary()].
show_lines(Keys) ->
    S = emqx_guard_redact:settings(emqx_guard_notify_config:of_settings(emqx_guard_settings:get())),
    [iolist_to_binary([atom_to_binary(K), " = ", value_text(maps:get(K, S))]) || K <- Keys].

%% @doc The status line of a channel's last delivery.
-spec delivery_line(emqx_guard_channel:kind(), emqx_guard_notify:delivery() | undefined) -> binary().
delivery_line(Kind, undefined) ->
    iolist_to_binary(["notify ", atom_to_binary(Kind), ": configured, nothing sent yet"]);
delivery_line(Kind, D) ->
    #{event := Event, state := State, attempts := N, at := At} = D,
    What =
        case State of
            sent -> ["sent (", maps:get(answer, D, <<>>), ")"];
            sending -> ["sending"];
            retrying -> ["retrying after attempt ", integer_to_binary(N), ": ", maps:get(error, D, <<>>)];
            failed -> ["FAILED after ", integer_to_binary(N), " attempt(s): ", maps:get(error, D, <<>>)]
        end,
    iolist_to_binary(["notify ", atom_to_binary(Kind), ": last ", atom_to_binary(Event), " at ",
        emqx_guard_render:instant(At, 0), ": ", What]).

%%--------------------------------------------------------------------------------------------

chat(Kind, []) ->
    show(channel_keys(Kind));
chat(Kind, [Off]) when Off =:= <<"off">>; Off =:= <<"none">> ->
    Defaults = emqx_guard_notify_config:defaults(),
    set(maps:with(channel_keys(Kind), Defaults), channel_keys(Kind));
chat(Kind, [Arg]) ->
    %% a bare URL stands for url=URL (its query may hold a `=' too)
    case {binary:match(Arg, <<"://">>), binary:match(Arg, <<"=">>)} of
        {{At, _}, {Eq, _}} when At < Eq -> with_changes(Kind, [<<"url=", Arg/binary>>], channel_keys(Kind));
        {{_, _}, nomatch} -> with_changes(Kind, [<<"url=", Arg/binary>>], channel_keys(Kind));
        _ -> with_changes(Kind, [Arg], channel_keys(Kind))
    end;
chat(Kind, Pairs) ->
    with_changes(Kind, Pairs, channel_keys(Kind)).

channel_keys(Kind) ->
    [K || {K, _, _} <- (emqx_guard_channel:module(Kind)):settings()].

smtp_keys() ->
    channel_keys(email) -- [notify_to] ++ [notify_tls_verify, notify_ca_file].

on_keys() ->
    [notify_on_failure, notify_on_success, notify_dead_man, notify_on_offsite_failed, notify_on_offsite_ok].

with_changes(Kind, Pairs, ShowKeys) ->
    Names = (emqx_guard_channel:module(Kind)):cli_names(),
    case changes(Pairs, Names, #{}) of
        {ok, Changes} -> set(Changes, ShowKeys);
        {error, Why} -> error_reason(Why)
    end.

changes([], _Names, Acc) ->
    {ok, Acc};
changes([Pair | Rest], Names, Acc) ->
    case split_pair(Pair) of
        {ok, Name, Value} ->
            case lists:keyfind(Name, 1, Names) of
                {Name, Key} ->
                    changes(Rest, Names, Acc#{Key => Value});
                false ->
                    Known = lists:join(", ", [N || {N, _} <- Names]),
                    emqx_guard_cli:bad_argument(["unknown key \"", hd(emqx_guard_redact:args([Name])), "\" (use ", Known, ")"])
            end;
        error ->
            emqx_guard_cli:bad_argument(["expected key=value, got \"", hd(emqx_guard_redact:args([Pair])), "\""])
    end.

on_changes([], Acc) ->
    {ok, Acc};
on_changes([Pair | Rest], Acc) ->
    case split_pair(Pair) of
        {ok, <<"failure">>, V} -> on_changes(Rest, Acc#{notify_on_failure => V});
        {ok, <<"success">>, V} -> on_changes(Rest, Acc#{notify_on_success => V});
        {ok, <<"dead_man">>, V} -> on_changes(Rest, Acc#{notify_dead_man => V});
        {ok, <<"offsite_failed">>, V} -> on_changes(Rest, Acc#{notify_on_offsite_failed => V});
        {ok, <<"offsite_ok">>, V} -> on_changes(Rest, Acc#{notify_on_offsite_ok => V});
        _ ->
            emqx_guard_cli:bad_argument(["expected failure=on|off, success=on|off, dead_man=on|off, offsite_failed=on|off or "
                "offsite_ok=on|off, got \"", Pair, "\""])
    end.

split_pair(Pair) ->
    case binary:split(Pair, <<"=">>) of
        [Name, Value] when Name =/= <<>> -> {ok, string:lowercase(Name), Value};
        _ -> error
    end.

%% Validates here first (messages name our keys, and the rules between keys hold for the
%% settings as they would be), then stores through the cluster.
set(Changes, ShowKeys) ->
    Checked = maps:fold(
        fun
            (K, V, {ok, Acc}) ->
                case emqx_guard_notify_config:validate(K, V) of
                    {ok, Value} -> {ok, Acc#{K => Value}};
                    {error, _} = E -> E
                end;
            (_, _, E) ->
                E
        end,
        {ok, #{}},
        Changes
    ),
    case Checked of
        {ok, Valid} -> store(Valid, ShowKeys);
        {error, Why} -> error_reason(Why)
    end.

store(Valid, ShowKeys) ->
    %% stored here and pushed to every running node
    case emqx_guard_settings_sync:update(Valid) of
        {ok, _, Unreached} ->
            show(ShowKeys),
            _ = [line(["Warning: not applied on ", atom_to_binary(N, utf8), ": ", Why]) || {N, Why} <- Unreached],
            ok;
        {error, Why} ->
            error_reason(Why)
    end.

show(Keys) ->
    lists:foreach(fun emqx_guard_cli:line/1, show_lines(Keys)).

%% The e-mail, webhook and shared keys always; a chat channel's keys when it is set up, else
%% one line saying it is off.
show_all() ->
    Settings = emqx_guard_settings:get(),
    Enabled = emqx_guard_channel:enabled(Settings),
    Chat = lists:append([channel_keys(K) || K <- ?CHAT]),
    show(emqx_guard_notify_config:keys() -- [notify_http_hosts | Chat]),
    lists:foreach(
        fun(K) ->
            case lists:member(K, Enabled) of
                true -> show(channel_keys(K));
                false -> line(["notify_", atom_to_binary(K), " = off"])
            end
        end,
        ?CHAT
    ),
    show([notify_http_hosts]),
    lists:foreach(fun emqx_guard_cli:line/1, emqx_guard_notify:status_lines()).

notify_test(Which) ->
    case emqx_guard_notify:send_test(Which) of
        [] ->
            error_line(
                "nothing to send to: set up a channel first (guard notify_smtp and notify_to, notify_webhook, notify_slack, ...)"
            );
        Results ->
            lists:foreach(
                fun
                    ({Kind, {ok, Answer}}) ->
                        line(["notify_test ", atom_to_binary(Kind), ": sent; the server answered: ", Answer]);
                    ({Kind, {error, {not_configured, _}}}) ->
                        error_line(["notify_test ", atom_to_binary(Kind), ": not configured (guard notify_",
                            cli_name(Kind), ")"]);
                    ({Kind, {error, Why}}) ->
                        error_line(["notify_test ", atom_to_binary(Kind), " failed: ", emqx_guard_outcome:format_error(Why)])
                end,
                Results
            )
    end.

cli_name(email) -> <<"smtp">>;
cli_name(K) -> atom_to_binary(K).

kind_list(Kinds, Prefix) ->
    lists:join(", ", [[Prefix, atom_to_binary(K)] || K <- Kinds]).

value_text(L) when is_list(L) ->
    ["[", lists:join(", ", [["\"", A, "\""] || A <- L]), "]"];
value_text(B) when is_binary(B) ->
    ["\"", B, "\""];
value_text(true) ->
    "on";
value_text(false) ->
    "off";
value_text(I) when is_integer(I) ->
    integer_to_binary(I).

