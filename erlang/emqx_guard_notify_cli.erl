%% @doc The `emqx ctl guard notify*' commands: show and set the notification settings, and send
%% a test message. `emqx_guard_cli' hands these arguments over; every failure prints one line
%% starting with `Error:'. The SMTP password is never printed (`******' when set).
%%
%% <ul>
%% <li>`guard notify': every notification setting and the last delivery on each channel;</li>
%% <li>`guard notify_smtp [key=value ...]' with keys `server', `port', `tls'
%%     (none | starttls | tls), `user', `password', `from', `verify' (on | off), `ca_file';
%%     `guard notify_smtp off' turns e-mail off (clears the server);</li>
%% <li>`guard notify_to [addr ...]': the recipients; `none' clears them;</li>
%% <li>`guard notify_webhook [url]': the webhook; `off' clears it;</li>
%% <li>`guard notify_on [failure=on|off] [success=on|off] [dead_man=on|off]';</li>
%% <li>`guard notify_test': sends a test message on every configured channel and prints what
%%     each server answered.</li>
%% </ul>
-module(emqx_guard_notify_cli).

-export([cmd/1, usage_lines/0, show_lines/1]).

%% @doc Handles `Args' (binaries, the first one the command) if it is a notify command.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"notify">>]) ->
    show_all();
cmd([<<"notify_smtp">>]) ->
    show(smtp_keys());
cmd([<<"notify_smtp">>, <<"off">>]) ->
    set(#{notify_smtp_server => <<>>}, smtp_keys());
cmd([<<"notify_smtp">> | Pairs]) ->
    case smtp_changes(Pairs, #{}) of
        {ok, Changes} -> set(Changes, smtp_keys());
        {error, Line} -> error_line(Line)
    end;
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
cmd([<<"notify_on">>]) ->
    show(on_keys());
cmd([<<"notify_on">> | Pairs]) ->
    case on_changes(Pairs, #{}) of
        {ok, Changes} -> set(Changes, on_keys());
        {error, Line} -> error_line(Line)
    end;
cmd([<<"notify_test">>]) ->
    notify_test();
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
        {"guard notify_on [failure=on|off] [success=on|off] [dead_man=on|off]",
            "Show or set when to notify (default: failure and dead_man on, success off)"},
        {"guard notify_test", "Send a test message now and print what the servers answered"}
    ].

%% @doc `key = value' lines for the given keys, the password hidden.
-spec show_lines([emqx_guard_notify_config:key()]) -> [binary()].
show_lines(Keys) ->
    S = emqx_guard_notify_config:redacted(
        emqx_guard_notify_config:of_settings(emqx_guard_settings:get())
    ),
    [iolist_to_binary([atom_to_binary(K), " = ", value_text(maps:get(K, S))]) || K <- Keys].

%%--------------------------------------------------------------------------------------------

smtp_keys() ->
    [
        notify_smtp_server,
        notify_smtp_port,
        notify_smtp_tls,
        notify_smtp_user,
        notify_smtp_password,
        notify_from,
        notify_tls_verify,
        notify_ca_file
    ].

on_keys() ->
    [notify_on_failure, notify_on_success, notify_dead_man].

smtp_changes([], Acc) ->
    {ok, Acc};
smtp_changes([Pair | Rest], Acc) ->
    case split_pair(Pair) of
        {ok, Name, Value} ->
            Key =
                case Name of
                    <<"server">> -> notify_smtp_server;
                    <<"host">> -> notify_smtp_server;
                    <<"port">> -> notify_smtp_port;
                    <<"tls">> -> notify_smtp_tls;
                    <<"user">> -> notify_smtp_user;
                    <<"password">> -> notify_smtp_password;
                    <<"from">> -> notify_from;
                    <<"verify">> -> notify_tls_verify;
                    <<"ca_file">> -> notify_ca_file;
                    _ -> unknown
                end,
            case Key of
                unknown ->
                    {error, [
                        "unknown key \"", Name, "\" (use server, port, tls, user, password, from, verify, ca_file)"
                    ]};
                _ ->
                    smtp_changes(Rest, Acc#{Key => Value})
            end;
        error ->
            {error, ["expected key=value, got \"", hide_password(Pair), "\""]}
    end.

on_changes([], Acc) ->
    {ok, Acc};
on_changes([Pair | Rest], Acc) ->
    case split_pair(Pair) of
        {ok, <<"failure">>, V} -> on_changes(Rest, Acc#{notify_on_failure => V});
        {ok, <<"success">>, V} -> on_changes(Rest, Acc#{notify_on_success => V});
        {ok, <<"dead_man">>, V} -> on_changes(Rest, Acc#{notify_dead_man => V});
        _ -> {error, ["expected failure=on|off, success=on|off or dead_man=on|off, got \"", Pair, "\""]}
    end.

split_pair(Pair) ->
    case binary:split(Pair, <<"=">>) of
        [Name, Value] when Name =/= <<>> -> {ok, string:lowercase(Name), Value};
        _ -> error
    end.

hide_password(Pair) ->
    hd(emqx_guard_notify_config:redacted_args([Pair])).

%% Validates here first (messages name our keys), then stores through the scheduler.
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
        {ok, Valid} ->
            %% stored here and pushed to every running node
            case emqx_guard_settings_sync:update(Valid) of
                {ok, _, Unreached} ->
                    show(ShowKeys),
                    lists:foreach(
                        fun({N, Why}) -> line(["Warning: not applied on ", atom_to_binary(N, utf8), ": ", Why]) end,
                        Unreached
                    );
                {error, Line} ->
                    error_line(Line)
            end;
        {error, Line} ->
            error_line(Line)
    end.

show(Keys) ->
    lists:foreach(fun line/1, show_lines(Keys)).

show_all() ->
    show(emqx_guard_notify_config:keys()),
    lists:foreach(fun line/1, emqx_guard_notify:status_lines()).

notify_test() ->
    case emqx_guard_notify:send_test() of
        [] ->
            error_line(
                "nothing to send to: set a server and recipients (guard notify_smtp, guard notify_to) or a webhook (guard notify_webhook)"
            );
        Results ->
            lists:foreach(
                fun
                    ({Channel, {ok, Answer}}) ->
                        line(["notify_test ", atom_to_binary(Channel), ": sent; the server answered: ", Answer]);
                    ({Channel, {error, Why}}) ->
                        line(["Error: notify_test ", atom_to_binary(Channel), " failed: ", Why])
                end,
                Results
            )
    end.

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

error_line(Line) ->
    line(["Error: ", Line]).

line(IoData) ->
    emqx_guard_emqx:print("~ts~n", [iolist_to_binary(IoData)]).
