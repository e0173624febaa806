%% @doc Notifications against real servers on 127.0.0.1 that this suite starts: an SMTP server
%% (Python aiosmtpd, `emqx_guard_notify_SUITE_data/smtp_server.py': plain, STARTTLS, implicit
%% TLS, AUTH, deferrals) with a test CA and server certificate made by `openssl' here, and an
%% HTTP listener (gen_tcp) for the webhook. Each case checks what actually arrived.
-module(emqx_guard_notify_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([suite/0]).
-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    email_starttls_auth_backup_ok/1,
    email_implicit_tls_backup_failed/1,
    email_retries_after_deferral/1,
    email_wrong_password_not_retried_and_never_shown/1,
    email_untrusted_certificate_refused/1,
    email_dead_server_gives_up_after_retries/1,
    nothing_sent_unless_wanted/1,
    webhook_json_after_retry/1,
    webhook_https_checks_the_certificate/1,
    dead_man_warns_once/1,
    dead_man_counts_what_other_nodes_did/1,
    cli_settings_test_message_and_persistence/1,
    dead_server_changes_nothing_about_the_backup/1,
    secrets_never_logged_nor_in_status/1,
    one_sender_per_channel_against_a_stalled_server/1,
    webhook_failure_log_shows_no_path/1
]).

-define(SETTINGS_KEY, {?MODULE, settings}).
-define(BACKUP_NAME, <<"emqx-export-2026-01-02-03-04-05.678.tar.gz">>).

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [
        email_starttls_auth_backup_ok,
        email_implicit_tls_backup_failed,
        email_retries_after_deferral,
        email_wrong_password_not_retried_and_never_shown,
        email_untrusted_certificate_refused,
        email_dead_server_gives_up_after_retries,
        nothing_sent_unless_wanted,
        webhook_json_after_retry,
        webhook_https_checks_the_certificate,
        dead_man_warns_once,
        dead_man_counts_what_other_nodes_did,
        cli_settings_test_message_and_persistence,
        dead_server_changes_nothing_about_the_backup,
        secrets_never_logged_nor_in_status,
        one_sender_per_channel_against_a_stalled_server,
        webhook_failure_log_shows_no_path
    ].

%%--------------------------------------------------------------------------------------------
%% Setup
%%--------------------------------------------------------------------------------------------

init_per_suite(Config) ->
    %% A missing tool is a failure, not a skip: a run that skips these tests tested nothing.
    Python = os:find_executable("python3"),
    ?assertNotEqual(false, Python, "python3 is needed for the SMTP test server"),
    ?assertEqual("ok\n", os:cmd("python3 -c 'import aiosmtpd; print(\"ok\")' 2>&1"),
        "aiosmtpd is needed: python3 -m pip install aiosmtpd"),
    ?assertNotEqual(false, os:find_executable("openssl")),
    ?assertMatch({ok, _}, emqx_guard_nif:list_backups(list_to_binary(?config(priv_dir, Config)))),
    Certs = make_certs(filename:join(?config(priv_dir, Config), "certs")),
    {ok, _} = application:ensure_all_started(inets),
    Script = emqx_guard_receivers:smtp_script(),
    ?assert(filelib:is_regular(Script), Script),
    Certs ++ Config.

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

init_per_testcase(TC, Config0) ->
    Config = emqx_guard_ct_helper:init_case(TC, Config0),
    Backup = filename:join([?config(data_dir, Config), "backup", ?BACKUP_NAME]),
    ok = filelib:ensure_dir(Backup),
    ok = file:write_file(Backup, binary:copy(<<"x">>, 1536)),
    [{backup_path, iolist_to_binary(Backup)} | Config].

end_per_testcase(_TC, _Config) ->
    stop_notify(),
    emqx_guard_ct_helper:end_case(),
    application:unset_env(emqx_guard, notify),
    _ = persistent_term:erase(?SETTINGS_KEY),
    ok.

%% A CA and a server certificate for 127.0.0.1 signed by it (a self-signed leaf is refused by
%% rustls as a CA used as end entity, and real servers look like this anyway).
make_certs(Dir) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    F = fun(Name) -> filename:join(Dir, Name) end,
    ok = file:write_file(F("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    Cmds = [
        ["openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=emqx_guard-test-CA -keyout ",
            F("ca.key"), " -out ", F("ca.pem")],
        ["openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout ", F("key.pem"), " -out ", F("srv.csr")],
        ["openssl x509 -req -days 2 -in ", F("srv.csr"), " -CA ", F("ca.pem"), " -CAkey ", F("ca.key"),
            " -CAcreateserial -extfile ", F("ext.cnf"), " -out ", F("cert.pem")]
    ],
    [run_checked(lists:flatten(C)) || C <- Cmds],
    [{ca_file, F("ca.pem")}, {cert_file, F("cert.pem")}, {key_file, F("key.pem")}].

run_checked(Cmd) ->
    Out = os:cmd(Cmd ++ " 2>&1; echo \"exit=$?\""),
    ?assertNotEqual(nomatch, string:find(Out, "exit=0"), Out).

%% Starts smtp_server.py (`emqx_guard_receivers'); returns {PortHandle, TcpPort, OutDir} after it
%% printed its TCP port.
start_smtp(Config, Args) ->
    emqx_guard_receivers:start_smtp(?config(data_dir, Config), Args).

tls_args(Config) ->
    ["--cert", ?config(cert_file, Config), "--key", ?config(key_file, Config)].

%% The notify server alone, reading the settings this test sets.
start_notify(Settings, Opts) ->
    persistent_term:put(?SETTINGS_KEY, Settings),
    {ok, Pid} = emqx_guard_notify:start_link(maps:merge(
        #{
            settings => fun() -> persistent_term:get(?SETTINGS_KEY) end,
            backoff_ms => [20, 40, 80],
            timeout_ms => 5000
        },
        Opts
    )),
    unlink(Pid),
    Pid.

stop_notify() ->
    case whereis(emqx_guard_notify) of
        undefined -> ok;
        _ -> try gen_server:stop(emqx_guard_notify) catch exit:_ -> ok end
    end.

base_settings() ->
    maps:merge(emqx_guard_settings:defaults(), #{
        backup_cron => <<"0 12 * * 0">>,
        backup_timezone => <<"Europe/Berlin">>
    }).

smtp_settings(Port, Tls, Extra) ->
    maps:merge(
        maps:merge(base_settings(), #{
            notify_smtp_server => <<"127.0.0.1">>,
            notify_smtp_port => Port,
            notify_smtp_tls => Tls,
            notify_from => <<"emqx_guard <guard@example.com>">>,
            notify_to => [<<"ops@example.com">>, <<"Night Shift <night@example.org>">>]
        }),
        Extra
    ).

ok_facts(Config) ->
    Path = ?config(backup_path, Config),
    #{
        result => ok,
        started_at => 1767319445678,
        file => ?BACKUP_NAME,
        path => Path,
        size => 1536,
        sha256 => <<"4b2f7e0d6a1c9e8f00112233445566778899aabbccddeeff0011223344556677">>,
        duration_ms => 2500,
        trigger => scheduled
    }.

%% Waits for the Nth message the SMTP server accepted and returns it decoded.
message(OutDir, N) ->
    File = filename:join(OutDir, integer_to_list(N) ++ ".json"),
    emqx_guard_ct_helper:wait_until(fun() -> filelib:is_regular(File) end),
    {ok, Bin} = file:read_file(File),
    json_decode(Bin).

messages(OutDir) ->
    length(filelib:wildcard(filename:join(OutDir, "*.json"))).

%% Waits until the channel's delivery is finished (sent or failed) and returns it.
final(Channel) ->
    emqx_guard_ct_helper:wait_until(fun() ->
        case maps:get(Channel, emqx_guard_notify:status()) of
            #{state := S} -> S =:= sent orelse S =:= failed;
            undefined -> false
        end
    end),
    maps:get(Channel, emqx_guard_notify:status()).

contains(Haystack, Needle) ->
    string:find(Haystack, Needle) =/= nomatch.

%%--------------------------------------------------------------------------------------------
%% E-mail
%%--------------------------------------------------------------------------------------------

email_starttls_auth_backup_ok(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "starttls", "--auth", "ops:s3cret pw"] ++ tls_args(Config)),
    start_notify(
        smtp_settings(Port, <<"starttls">>, #{
            notify_smtp_user => <<"ops">>,
            notify_smtp_password => <<"s3cret pw">>,
            notify_ca_file => list_to_binary(?config(ca_file, Config)),
            notify_on_success => true
        }),
        #{}
    ),
    Facts = ok_facts(Config),
    ok = emqx_guard_notify:notify(backup_ok, Facts),
    M = message(Out, 1),
    Node = atom_to_binary(node()),
    ?assertEqual(
        <<"[emqx_guard] backup OK on ", Node/binary, ": ", ?BACKUP_NAME/binary, " (1.5 KiB)">>,
        maps:get(<<"subject">>, M)
    ),
    ?assertEqual([<<"ops@example.com">>, <<"night@example.org">>], maps:get(<<"rcpt_tos">>, M)),
    ?assertEqual(<<"guard@example.com">>, maps:get(<<"mail_from">>, M)),
    ?assertEqual(<<"ops">>, maps:get(<<"auth_user">>, M)),
    ?assertEqual(true, maps:get(<<"tls">>, M)),
    Body = maps:get(<<"body">>, M),
    Path = ?config(backup_path, Config),
    [
        ?assert(contains(Body, Want), {missing, Want, Body})
     || Want <- [
            <<"Node:         ", Node/binary>>,
            %% 2026-01-02 02:04:05.678 UTC is 03:04:05 in Berlin (CET, +01:00)
            <<"Time:         2026-01-02 03:04:05 +01:00 (Europe/Berlin)">>,
            <<"File:         ", Path/binary>>,
            <<"Size:         1.5 KiB (1536 bytes)">>,
            <<"SHA-256:      ", (maps:get(sha256, Facts))/binary>>,
            <<"Duration:     2.5 s">>,
            <<"Next backup:  ">>,
            <<"12:00:00 +0">>,
            <<"Backups now kept (1):">>,
            <<"  ", ?BACKUP_NAME/binary, "  1.5 KiB  (this run)">>,
            <<"emqx_ctl data import ", Path/binary>>
        ]
    ],
    #{state := sent, attempts := 1, answer := Answer, event := backup_ok} = final(email),
    ?assertEqual(<<"250 2.0.0 Ok: queued as TEST1">>, Answer),
    port_close(P).

email_implicit_tls_backup_failed(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "tls"] ++ tls_args(Config)),
    %% no CA file: only a server certificate check that is switched off lets this through
    start_notify(smtp_settings(Port, <<"tls">>, #{notify_tls_verify => false}), #{}),
    ok = emqx_guard_notify:notify(backup_failed, #{
        started_at => 1767319445678,
        duration_ms => 600000,
        trigger => scheduled,
        error => <<"export timed out after 10 min">>
    }),
    M = message(Out, 1),
    Node = atom_to_binary(node()),
    ?assertEqual(<<"[emqx_guard] backup FAILED on ", Node/binary, ": export timed out after 10 min">>,
        maps:get(<<"subject">>, M)),
    ?assertEqual(true, maps:get(<<"tls">>, M)),
    Body = maps:get(<<"body">>, M),
    ?assert(contains(Body, <<"Error:        export timed out after 10 min">>), Body),
    ?assert(contains(Body, <<"Earlier backups are kept">>), Body),
    ?assertNot(contains(Body, <<"emqx_ctl data import">>), Body),
    #{state := sent} = final(email),
    port_close(P).

email_retries_after_deferral(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "none", "--defer", "2"]),
    start_notify(smtp_settings(Port, <<"none">>, #{}), #{backoff_ms => [10, 10, 10]}),
    ok = emqx_guard_notify:notify(backup_failed, #{error => <<"disk full">>}),
    M = message(Out, 1),
    ?assert(contains(maps:get(<<"subject">>, M), <<": disk full">>)),
    #{state := sent, attempts := 3} = final(email),
    ?assertEqual(1, messages(Out)),
    port_close(P).

email_wrong_password_not_retried_and_never_shown(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "starttls", "--auth", "ops:right"] ++ tls_args(Config)),
    start_notify(
        smtp_settings(Port, <<"starttls">>, #{
            notify_smtp_user => <<"ops">>,
            notify_smtp_password => <<"Wr0ngPassw0rd">>,
            notify_ca_file => list_to_binary(?config(ca_file, Config))
        }),
        #{}
    ),
    {ok, Handler} = capture_logs(),
    ok = emqx_guard_notify:notify(backup_failed, #{error => <<"boom">>}),
    #{state := failed, attempts := 1, error := Error} = final(email),
    ?assertMatch(<<"auth: ", _/binary>>, Error),
    ?assertEqual(0, messages(Out)),
    Lines = emqx_guard_notify:status_lines(),
    ?assert(lists:any(fun(L) -> contains(L, <<"FAILED after 1 attempt(s): auth:">>) end, Lines), Lines),
    Logged = logged(Handler),
    ?assert(contains(Logged, <<"emqx_guard_notify_failed">>), Logged),
    [?assertNot(contains(iolist_to_binary(io_lib:format("~p", [X])), <<"Wr0ngPassw0rd">>)) || X <- [Lines, Logged, emqx_guard_notify:status()]],
    port_close(P).

email_untrusted_certificate_refused(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "starttls"] ++ tls_args(Config)),
    %% verify on, and the test CA is not among the system's roots
    start_notify(smtp_settings(Port, <<"starttls">>, #{}), #{}),
    ok = emqx_guard_notify:notify(backup_failed, #{error => <<"boom">>}),
    #{state := failed, attempts := 1, error := Error} = final(email),
    ?assertMatch(<<"tls: ", _/binary>>, Error),
    ?assertEqual(0, messages(Out)),
    port_close(P).

email_dead_server_gives_up_after_retries(_Config) ->
    Port = closed_port(),
    start_notify(smtp_settings(Port, <<"none">>, #{}), #{backoff_ms => [10, 10, 10]}),
    ok = emqx_guard_notify:notify(backup_failed, #{error => <<"boom">>}),
    #{state := failed, attempts := 4, error := Error} = final(email),
    ?assertMatch(<<"connect: ", _/binary>>, Error).

nothing_sent_unless_wanted(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "none"]),
    %% notify_on_success is off by default: a success is not mailed, a failure is
    start_notify(smtp_settings(Port, <<"none">>, #{}), #{}),
    ok = emqx_guard_notify:notify(backup_ok, ok_facts(Config)),
    ok = emqx_guard_notify:notify(backup_failed, #{error => <<"second">>}),
    M = message(Out, 1),
    ?assert(contains(maps:get(<<"subject">>, M), <<"FAILED">>)),
    #{event := backup_failed, state := sent} = final(email),
    ?assertEqual(1, messages(Out)),
    port_close(P).

%%--------------------------------------------------------------------------------------------
%% Webhook
%%--------------------------------------------------------------------------------------------

webhook_json_after_retry(Config) ->
    {Url, Listener} = start_http([503, 200]),
    %% the dead-man watch off: the fixed backup time lies in the past, so its alert could
    %% otherwise be the delivery this test looks at
    start_notify(
        maps:merge(base_settings(), #{notify_webhook_url => Url, notify_on_success => true, notify_dead_man => false}),
        #{backoff_ms => [10, 10]}
    ),
    ok = emqx_guard_notify:notify(backup_ok, ok_facts(Config)),
    #{state := sent, attempts := 2, answer := Answer} = final(webhook),
    ?assertMatch(<<"HTTP 200 OK", _/binary>>, Answer),
    [First, Second] = http_requests(Listener, 2),
    ?assertEqual(maps:get(body, First), maps:get(body, Second)),
    #{headers := Headers, body := Body, request_line := RequestLine} = Second,
    ?assertEqual(<<"POST /hook?token=abc HTTP/1.1">>, RequestLine),
    ?assertEqual(<<"application/json">>, maps:get(<<"content-type">>, Headers)),
    Doc = json_decode(Body),
    Path = ?config(backup_path, Config),
    ?assertEqual(<<"backup_ok">>, maps:get(<<"event">>, Doc)),
    ?assertEqual(atom_to_binary(node()), maps:get(<<"node">>, Doc)),
    ?assertEqual(?BACKUP_NAME, maps:get(<<"file">>, Doc)),
    ?assertEqual(Path, maps:get(<<"path">>, Doc)),
    ?assertEqual(1536, maps:get(<<"size">>, Doc)),
    ?assertEqual(maps:get(sha256, ok_facts(Config)), maps:get(<<"sha256">>, Doc)),
    ?assertEqual(2500, maps:get(<<"duration_ms">>, Doc)),
    ?assertEqual(<<"2026-01-02T03:04:05+01:00">>, maps:get(<<"time">>, Doc)),
    ?assertEqual(<<"Europe/Berlin">>, maps:get(<<"zone">>, Doc)),
    ?assertEqual(<<"emqx_ctl data import ", Path/binary>>, maps:get(<<"restore_command">>, Doc)),
    ?assertMatch([#{<<"name">> := ?BACKUP_NAME, <<"size">> := 1536}], maps:get(<<"kept">>, Doc)),
    ?assert(is_integer(maps:get(<<"next_fire_ms">>, Doc))),
    ?assert(contains(maps:get(<<"summary">>, Doc), <<"[emqx_guard] backup OK on ">>)),
    ?assert(contains(maps:get(<<"text">>, Doc), <<"Backups now kept (1):">>)).

webhook_https_checks_the_certificate(Config) ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, L} = ssl:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}, {reuseaddr, true},
        {certfile, ?config(cert_file, Config)}, {keyfile, ?config(key_file, Config)}]),
    {ok, {_, Port}} = ssl:sockname(L),
    Test = self(),
    Pid = spawn_link(fun() -> https_loop(L, Test) end),
    ok = ssl:controlling_process(L, Pid),
    Url = iolist_to_binary(["https://127.0.0.1:", integer_to_list(Port), "/hook"]),
    Base = maps:merge(base_settings(), #{notify_webhook_url => Url}),
    %% the test CA is not a system root: refused, and not retried
    start_notify(Base, #{}),
    ok = emqx_guard_notify:notify(backup_failed, #{error => <<"boom">>}),
    #{state := failed, attempts := 1} = final(webhook),
    stop_notify(),
    %% with the CA file it goes through, certificate and host checked
    start_notify(Base#{notify_ca_file => list_to_binary(?config(ca_file, Config))}, #{}),
    ok = emqx_guard_notify:notify(backup_failed, #{error => <<"boom">>}),
    #{state := sent, attempts := 1, answer := <<"HTTP 200 OK", _/binary>>} = final(webhook),
    Body = receive {https_body, Pid, B} -> B after 20000 -> error(no_https_request) end,
    ?assertEqual(<<"backup_failed">>, maps:get(<<"event">>, json_decode(Body))),
    unlink(Pid),
    exit(Pid, kill).

https_loop(L, Test) ->
    {ok, T} = ssl:transport_accept(L),
    case ssl:handshake(T, 10000) of
        {ok, S} ->
            ok = ssl:setopts(S, [{packet, http_bin}]),
            Req = https_read(S, #{}),
            Test ! {https_body, self(), maps:get(body, Req)},
            _ = ssl:send(S, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
            _ = ssl:close(S);
        {error, _} ->
            ok
    end,
    https_loop(L, Test).

https_read(S, Req) ->
    case ssl:recv(S, 0, 10000) of
        {ok, {http_request, _, _, _}} ->
            https_read(S, Req);
        {ok, {http_header, _, 'Content-Length', _, V}} ->
            https_read(S, Req#{len => binary_to_integer(V)});
        {ok, {http_header, _, _, _, _}} ->
            https_read(S, Req);
        {ok, http_eoh} ->
            ok = ssl:setopts(S, [{packet, raw}]),
            {ok, Body} = ssl:recv(S, maps:get(len, Req), 10000),
            Req#{body => Body}
    end.

%%--------------------------------------------------------------------------------------------
%% Dead-man warning
%%--------------------------------------------------------------------------------------------

dead_man_warns_once(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "none"]),
    StateFile = filename:join(?config(data_dir, Config), "notify_state"),
    LastSuccess = erlang:system_time(millisecond) - 10 * 60000,
    ok = emqx_guard_store:write(StateFile, #{last_success => LastSuccess, warned_for => undefined}),
    %% every minute: the second fire after the last success was about 8 minutes ago
    start_notify(
        smtp_settings(Port, <<"none">>, #{backup_cron => <<"* * * * *">>, backup_timezone => <<"UTC">>}),
        #{state_file => StateFile, dead_man_grace_ms => 0}
    ),
    ok = emqx_guard_notify:check_dead_man(),
    M = message(Out, 1),
    Node = atom_to_binary(node()),
    ?assertMatch(<<"[emqx_guard] backup MISSING on ", _/binary>>, maps:get(<<"subject">>, M)),
    ?assert(contains(maps:get(<<"subject">>, M), Node)),
    ?assert(contains(maps:get(<<"body">>, M), <<"Last success: ">>)),
    #{state := sent, event := dead_man} = final(email),
    %% the same silence is not reported again
    ok = emqx_guard_notify:check_dead_man(),
    ok = emqx_guard_notify:check_dead_man(),
    _ = emqx_guard_notify:status(),
    ?assertEqual(1, messages(Out)),
    %% a success re-arms the watch and is persisted
    Now = erlang:system_time(millisecond),
    ok = emqx_guard_notify:notify(backup_ok, (ok_facts(Config))#{started_at => Now}),
    #{last_success := Now, dead_man_deadline := Deadline} = emqx_guard_notify:status(),
    ?assert(Deadline > Now),
    ?assertMatch({ok, {emqx_guard_notify_state, 2, #{last_success := Now}}}, emqx_guard_store:read(StateFile)),
    port_close(P).

%% What other nodes of the cluster did counts: a silence another node already warned about is not
%% warned about again here, and a backup made elsewhere (a verified copy of it arrived, or its node
%% told its result) is a success as of when it was made; an older one does not move the last
%% success back. (Which one node of a cluster warns: emqx_guard_cluster_notify_SUITE.)
dead_man_counts_what_other_nodes_did(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "none"]),
    StateFile = filename:join(?config(data_dir, Config), "notify_state_cluster"),
    LastSuccess = erlang:system_time(millisecond) - 10 * 60000,
    ok = emqx_guard_store:write(StateFile, #{last_success => LastSuccess, warned_for => undefined}),
    start_notify(
        smtp_settings(Port, <<"none">>, #{backup_cron => <<"* * * * *">>, backup_timezone => <<"UTC">>}),
        #{state_file => StateFile, dead_man_grace_ms => 0}
    ),
    try
        %% another node warned of this silence: nothing more from here, and that is persisted
        ok = emqx_guard_notify:dead_man_warned(LastSuccess),
        ok = emqx_guard_notify:check_dead_man(),
        ?assertEqual(
            {ok, {emqx_guard_notify_state, 2, #{last_success => LastSuccess, warned_for => LastSuccess}}},
            emqx_guard_store:read(StateFile)
        ),
        %% a fresh backup made elsewhere
        Now = erlang:system_time(millisecond),
        ok = emqx_guard_notify:backup_seen(Now),
        #{last_success := Now} = emqx_guard_notify:status(),
        ok = emqx_guard_notify:check_dead_man(),
        %% an older copy does not move the last success back
        ok = emqx_guard_notify:backup_seen(LastSuccess),
        #{last_success := Now} = emqx_guard_notify:status(),
        %% no delivery was even started (a dispatch records one at once), and none arrived
        ?assertEqual(undefined, maps:get(email, emqx_guard_notify:status())),
        ?assertEqual(0, messages(Out))
    after
        port_close(P)
    end.

%%--------------------------------------------------------------------------------------------
%% Through the plugin: CLI, persistence, and a backup with a dead mail server
%%--------------------------------------------------------------------------------------------

cli_settings_test_message_and_persistence(Config) ->
    {P, Port, Out} = start_smtp(Config, ["--mode", "starttls", "--auth", "ops:pw-Secret-42"] ++ tls_args(Config)),
    ok = emqx_guard_ct_helper:start_app(real),
    Ctl = fun emqx_guard_ct_helper:ctl/1,
    CA = ?config(ca_file, Config),
    Shown = Ctl(["notify_smtp", "server=127.0.0.1", "port=" ++ integer_to_list(Port), "tls=starttls",
        "user=ops", "password=pw-Secret-42", "from=guard@example.com", "ca_file=" ++ CA]),
    ?assert(lists:member("notify_smtp_server = \"127.0.0.1\"", Shown), Shown),
    ?assert(lists:member("notify_smtp_password = \"******\"", Shown), Shown),
    ?assertMatch(["Error: notify_smtp_tls must be none, starttls or tls" ++ _], Ctl(["notify_smtp", "tls=ssl"])),
    ?assertMatch(["Error: notify_to: \"nobody\" is not an e-mail address"], Ctl(["notify_to", "nobody"])),
    ?assertEqual(["notify_to = [\"ops@example.com\", \"second@example.org\"]"],
        Ctl(["notify_to", "ops@example.com", "second@example.org"])),
    ?assertEqual(["notify_on_failure = on", "notify_on_success = on", "notify_dead_man = off",
                  "notify_on_offsite_failed = on", "notify_on_offsite_ok = off"],
        Ctl(["notify_on", "success=on", "dead_man=off", "offsite_ok=off"])),
    ?assertMatch(["Error: expected failure=on|off, " ++ _], Ctl(["notify_on", "offsite=off"])),
    [Line] = Ctl(["notify_test"]),
    ?assertEqual("notify_test email: sent; the server answered: 250 2.0.0 Ok: queued as TEST1", Line),
    M = message(Out, 1),
    ?assertMatch(<<"[emqx_guard] test message from ", _/binary>>, maps:get(<<"subject">>, M)),
    ?assertEqual([<<"ops@example.com">>, <<"second@example.org">>], maps:get(<<"rcpt_tos">>, M)),
    %% persisted: the same after a restart of the plugin, and the password never printed
    ok = emqx_guard_ct_helper:stop_app(),
    ok = emqx_guard_ct_helper:start_app(real),
    All = Ctl(["notify"]),
    ?assert(lists:member("notify_smtp_port = " ++ integer_to_list(Port), All), All),
    ?assert(lists:member("notify_on_success = on", All), All),
    ?assert(lists:any(fun(L) -> lists:prefix("notify email: ", L) end, All), All),
    Status = Ctl(["backup_status"]),
    [?assertEqual(nomatch, string:find(L, "pw-Secret-42"), L) || L <- All ++ Status ++ Shown],
    ?assert(lists:any(fun(L) -> lists:prefix("notify email: ", L) end, Status), Status),
    %% the file holds the password: readable by the owner only
    {ok, #file_info{mode = Mode}} = file:read_file_info(emqx_guard_settings:settings_file()),
    ?assertEqual(8#600, Mode band 8#777),
    {ok, SettingsFile} = file:read_file(emqx_guard_settings:settings_file()),
    ?assertNotEqual(nomatch, string:find(SettingsFile, <<"127.0.0.1">>)),
    port_close(P).

%% A mail server that accepts the connection and never answers: the backup run finishes with
%% its normal result while the e-mail for it is still waiting for the server.
dead_server_changes_nothing_about_the_backup(_Config) ->
    {ok, Hole} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    {ok, Port} = inet:port(Hole),
    Test = self(),
    Acceptor = spawn_link(fun() -> blackhole(Hole, Test, []) end),
    ok = gen_tcp:controlling_process(Hole, Acceptor),
    application:set_env(emqx_guard, notify, #{timeout_ms => 60000, backoff_ms => [60000]}),
    ok = emqx_guard_ct_helper:start_app(real),
    {ok, _} = emqx_guard_settings_sync:update_local(maps:merge(
        #{notify_smtp_server => <<"127.0.0.1">>, notify_smtp_port => Port, notify_smtp_tls => <<"none">>,
            notify_from => <<"guard@example.com">>, notify_to => [<<"ops@example.com">>]},
        #{notify_on_success => true}
    )),
    Before = emqx_guard_ct_helper:backups(),
    {ok, Run} = emqx_guard_scheduler:run_now(),
    ?assertMatch(#{result := ok, file := _, size := _}, Run),
    After = emqx_guard_ct_helper:backups(),
    ?assertEqual(length(Before) + 1, length(After)),
    %% the notification for this run is under way, stuck on the silent server
    receive
        {blackhole_accepted, Acceptor} -> ok
    after 20000 -> error(mail_never_attempted)
    end,
    ?assertMatch(#{email := #{state := sending, event := backup_ok}}, emqx_guard_notify:status()),
    %% and the scheduler is idle and answers at once
    ?assertEqual(undefined, maps:get(running, emqx_guard_scheduler:status())),
    ?assertMatch(#{last_run := #{result := ok}}, emqx_guard_scheduler:status()),
    unlink(Acceptor),
    exit(Acceptor, kill).

%% The password set through the CLI appears in no log event (settings change, a crashing
%% command holding it in its arguments) and in no sys:get_status report (the state; with
%% sys:log on, OTP returns the raw debug log as well, which no callback can redact); the webhook URL's path
%% and query (its secret) neither, and `guard notify_webhook' shows only scheme, host and port.
secrets_never_logged_nor_in_status(_Config) ->
    ok = emqx_guard_ct_helper:start_app(real),
    Ctl = fun emqx_guard_ct_helper:ctl/1,
    Hook = "https://hooks.example.com:8443/services/T0/HookSecret-77?access_token=Tok-55",
    %% the settings change is logged at info: let it through while this case runs
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    {ok, Id} = capture_logs(),
    Shown = Ctl(["notify_smtp", "server=127.0.0.1", "port=2525", "tls=none", "user=ops",
        "password=TopSecret-99", "from=guard@example.com"]),
    ?assertEqual(["notify_webhook_url = \"https://hooks.example.com:8443/…\""], Ctl(["notify_webhook", Hook])),
    ["backup_keep = 7" ++ _ | _] = Ctl(["backup_keep", "7"]),
    %% a command that crashes inside, with the password among its arguments
    {ok, Crash} = emqx_guard_test_io:capture(fun() ->
        emqx_guard_cli:cmd(["notify_smtp", "password=TopSecret-99", Hook, [not_text]])
    end),
    ?assertMatch("Error: internal error" ++ _, Crash),
    Logs = logged(Id),
    ok = logger:set_primary_config(level, Level),
    %% the events we look through are there
    ?assert(contains(Logs, <<"emqx_guard_settings_changed">>), Logs),
    ?assert(contains(Logs, <<"emqx_guard_cli_crash">>), Logs),
    ?assert(contains(Logs, <<"backup_keep">>), Logs),
    Status = iolist_to_binary(io_lib:format("~tp~n~tp", [
        sys:get_status(emqx_guard_scheduler), sys:get_status(emqx_guard_notify)
    ])),
    ?assert(contains(Status, <<"******">>), Status),
    Printed = unicode:characters_to_binary(lists:join("\n", Shown ++ Ctl(["notify"]) ++ Ctl(["backup_status"]))),
    All = iolist_to_binary([Logs, Status, Printed]),
    [?assertNot(contains(All, Secret), Secret) || Secret <- [<<"TopSecret-99">>, <<"HookSecret-77">>, <<"Tok-55">>]].

%% Several events while the mail server accepts and never answers: one connection (one sender,
%% one dirty IO scheduler) at a time; the waiting events keep the newest failure and the newest
%% success, and go out in turn once the server lets go of the one before.
one_sender_per_channel_against_a_stalled_server(Config) ->
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    {ok, Port} = inet:port(L),
    Test = self(),
    Holder = spawn_link(fun() -> holder(Test, []) end),
    Acceptor = spawn_link(fun() -> hand_over(L, Holder) end),
    ok = gen_tcp:controlling_process(L, Acceptor),
    start_notify(
        smtp_settings(Port, <<"none">>, #{notify_on_success => true}),
        #{backoff_ms => [], timeout_ms => 60000, deadline_ms => 120000}
    ),
    Failed = (ok_facts(Config))#{error => <<"export failed">>},
    ok = emqx_guard_notify:notify(backup_failed, Failed),
    ok = emqx_guard_notify:notify(backup_ok, ok_facts(Config)),
    ok = emqx_guard_notify:notify(backup_failed, Failed#{error => <<"disk full">>}),
    ok = emqx_guard_notify:notify(backup_ok, ok_facts(Config)),
    ?assertMatch(
        #{email := #{event := backup_failed, state := sending}, queued := #{email := [backup_failed, backup_ok]}},
        emqx_guard_notify:status()
    ),
    %% connection I+1 may appear only after connection I was closed (the holder counts the open ones)
    Open = [
        receive
            {held, Holder, OpenBefore} -> OpenBefore
        after 20000 -> error({no_connection, I})
        end
     || I <- [1, 2, 3], ok =:= release_previous(Holder, I)
    ],
    Holder ! {release, self()},
    emqx_guard_ct_helper:wait_until(fun() ->
        case emqx_guard_notify:status() of
            #{email := #{event := backup_ok, state := failed}, queued := #{email := []}} -> true;
            _ -> false
        end
    end),
    ?assertEqual([0, 0, 0], Open),
    %% no fourth connection: the first backup_ok was replaced by the second one
    Holder ! {count, self()},
    receive
        {count, Holder, N} -> ?assertEqual(3, N)
    after 5000 -> error(holder_silent)
    end,
    unlink(Acceptor),
    exit(Acceptor, kill),
    unlink(Holder),
    exit(Holder, kill).

release_previous(_Holder, 1) -> ok;
release_previous(Holder, _) -> Holder ! {release, self()}, ok.

hand_over(L, Holder) ->
    {ok, S} = gen_tcp:accept(L),
    ok = gen_tcp:controlling_process(S, Holder),
    Holder ! {accepted, S},
    hand_over(L, Holder).

%% Keeps the accepted connections open (never answering) until told to close them; tells the
%% test how many were still open when each new one arrived.
holder(Test, Open) ->
    holder(Test, Open, 0).

holder(Test, Open, Count) ->
    receive
        {accepted, S} ->
            Test ! {held, self(), length(Open)},
            holder(Test, [S | Open], Count + 1);
        {release, Test} ->
            [gen_tcp:close(S) || S <- Open],
            holder(Test, [], Count);
        {count, Test} ->
            Test ! {count, self(), Count},
            holder(Test, Open, Count)
    end.

%% A webhook the receiver refuses: the warning names the target by scheme, host and port only.
webhook_failure_log_shows_no_path(Config) ->
    {Url, _Listener} = start_http([400]),
    start_notify(
        maps:merge(base_settings(), #{notify_webhook_url => Url, notify_on_success => true}),
        #{backoff_ms => []}
    ),
    {ok, Id} = capture_logs(),
    ok = emqx_guard_notify:notify(backup_ok, ok_facts(Config)),
    #{state := failed} = final(webhook),
    _ = emqx_guard_notify:status(),
    Reports = emqx_guard_test_logs:reports(emqx_guard_test_logs:stop(Id)),
    Logs = iolist_to_binary([io_lib:format("~tp~n", [R]) || R <- Reports]),
    #{port := Port} = uri_string:parse(Url),
    Shown = unicode:characters_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/…"]),
    ?assertMatch([#{target := Shown}], [R || #{msg := emqx_guard_notify_failed} = R <- Reports]),
    ?assertNot(contains(Logs, <<"token=abc">>), Logs),
    ?assertNot(contains(Logs, <<"/hook">>), Logs).

blackhole(L, Test, Held) ->
    {ok, S} = gen_tcp:accept(L),
    Test ! {blackhole_accepted, self()},
    blackhole(L, Test, [S | Held]).

closed_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Port.

%%--------------------------------------------------------------------------------------------
%% HTTP listener for the webhook: answers each request with the next status of Codes (the
%% last one repeated) and records it.
%%--------------------------------------------------------------------------------------------

start_http(Codes) ->
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}, {packet, http_bin}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    Test = self(),
    Pid = spawn_link(fun() -> http_loop(L, Codes, Test) end),
    ok = gen_tcp:controlling_process(L, Pid),
    {iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/hook?token=abc"]), Pid}.

http_loop(L, Codes, Test) ->
    {ok, S} = gen_tcp:accept(L),
    {Code, Rest} =
        case Codes of
            [C] -> {C, [C]};
            [C | More] -> {C, More}
        end,
    Req = http_read(S, #{headers => #{}}),
    Test ! {http_request, self(), Req},
    Phrase =
        case Code of
            200 -> "OK";
            503 -> "Service Unavailable";
            _ -> "Whatever"
        end,
    RespBody = <<"{\"ok\":true}">>,
    ok = gen_tcp:send(S, [
        "HTTP/1.1 ", integer_to_list(Code), " ", Phrase, "\r\ncontent-type: application/json\r\ncontent-length: ",
        integer_to_list(byte_size(RespBody)), "\r\nconnection: close\r\n\r\n", RespBody
    ]),
    ok = gen_tcp:close(S),
    http_loop(L, Rest, Test).

http_read(S, Req) ->
    case gen_tcp:recv(S, 0, 10000) of
        {ok, {http_request, Method, {abs_path, Path}, {1, 1}}} ->
            http_read(S, Req#{request_line => iolist_to_binary([atom_to_list(Method), " ", Path, " HTTP/1.1"])});
        {ok, {http_header, _, Name, _, Value}} ->
            Key = string:lowercase(if is_atom(Name) -> atom_to_binary(Name); true -> Name end),
            http_read(S, Req#{headers => (maps:get(headers, Req))#{Key => Value}});
        {ok, http_eoh} ->
            Len = binary_to_integer(maps:get(<<"content-length">>, maps:get(headers, Req))),
            ok = inet:setopts(S, [{packet, raw}]),
            {ok, Body} = gen_tcp:recv(S, Len, 10000),
            ok = inet:setopts(S, [{packet, http_bin}]),
            Req#{body => Body}
    end.

http_requests(Pid, N) ->
    [
        receive
            {http_request, Pid, R} -> maps:update_with(headers, fun(H) -> maps:remove(<<"te">>, H) end, R)
        after 20000 -> error({missing_http_request, I})
        end
     || I <- lists:seq(1, N)
    ].

%%--------------------------------------------------------------------------------------------
%% Logs
%%--------------------------------------------------------------------------------------------

capture_logs() ->
    emqx_guard_test_logs:start().

logged(Id) ->
    _ = emqx_guard_notify:status(),
    emqx_guard_test_logs:text(emqx_guard_test_logs:stop(Id)).

%%--------------------------------------------------------------------------------------------
%% JSON decoding of what the servers recorded: emqx_guard_json's decoder (EUnit-tested on its own)
%%--------------------------------------------------------------------------------------------

json_decode(Bin) ->
    {ok, V} = emqx_guard_json:decode(Bin),
    V.
