%% Common Test suite for the off-site copies as a job of their own (issue 18 §2): the backup run
%% hands its backup to `emqx_guard_offsite_queue' and answers at once, whatever the remote does.
%%
%% The S3 server is real, on 127.0.0.1: every case runs in the group `s3s' (s3s-fs) and in the
%% group `rclone' (`rclone serve s3'). It is reached through `emqx_guard_fault_proxy', which
%% this suite switches between forwarding, hanging (connections accepted, never answered),
%% answering 503, and swallowing answers (the server stored the upload, the client never
%% learns). Notifications go to a real HTTP receiver on 127.0.0.1 (the webhook channel) that
%% records every event it got. The scheduler runs on the injected clock of
%% `emqx_guard_ct_helper'; the restart case runs the plugin in a real `peer' node.
-module(emqx_guard_offsite_queue_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).
-export([
    backup_answers_while_the_upload_hangs/1,
    remote_off_ends_a_hanging_upload/1,
    restart_resumes_without_uploading_twice/1
]).
%% Run inside a peer.
-export([peer_setup/3, peer_ctl/1, peer_queue_status/0]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, stop_app/0, set_now/1, next_timer/1, deliver/1, ctl/1,
                               wait_until/1, wait_idle/0]).

-define(ALARM, emqx_guard_offsite_failed).
%% Wednesday 2026-11-25 10:00:00 UTC; the schedule fires daily at 12:00 UTC.
-define(T0, {{2026, 11, 25}, {10, 0, 0}}).
-define(ENV, [
    {offsite_retry_ms, [50, 50]},
    %% a request that hangs stays pending for a minute: long enough to be seen hanging, and
    %% longer than any wait below, so a job that ends did not end by this timeout
    {offsite_extra, #{max_retries => 0, connect_timeout_ms => 2000, timeout_ms => 60000}},
    {offsite_requeue_ms, [300]}
]).

suite() ->
    [{timetrap, {minutes, 5}}].

all() ->
    [{group, Kind} || Kind <- emqx_guard_s3_helper:kinds()].

groups() ->
    Cases = [backup_answers_while_the_upload_hangs, remote_off_ends_a_hanging_upload,
             restart_resumes_without_uploading_twice],
    [{Kind, [], Cases} || Kind <- emqx_guard_s3_helper:kinds()].

init_per_group(Kind, Config) ->
    [{s3_kind, Kind} | Config].

end_per_group(_Kind, _Config) ->
    ok.

init_per_suite(Config) ->
    Config1 = emqx_guard_ct_helper:init_suite(Config),
    [ok = application:set_env(emqx_guard, K, V) || {K, V} <- ?ENV],
    case {emqx_guard_s3_helper:missing(), os:getenv("EMQX_GUARD_SKIP_S3")} of
        {[], _} -> Config1;
        {Missing, "1"} -> {skip, lists:flatten(["not installed (EMQX_GUARD_SKIP_S3=1): " | [H || {_, H} <- Missing]])};
        {Missing, _} -> ct:fail(lists:flatten(["S3 servers of the off-site tests not installed, run make test-deps: "
                                               | [H || {_, H} <- Missing]]))
    end.

end_per_suite(_Config) ->
    [application:unset_env(emqx_guard, K) || {K, _} <- ?ENV],
    emqx:reset(),
    ok.

init_per_testcase(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    S3 = emqx_guard_s3_helper:start(?config(s3_kind, Config1), ?config(data_dir, Config1)),
    Proxy = emqx_guard_fault_proxy:start(maps:get(port, S3)),
    Hook = start_receiver(),
    [{s3, S3}, {proxy, Proxy}, {hook, Hook} | Config1].

end_per_testcase(_TC, Config) ->
    [try peer:stop(P) catch _:_ -> ok end || P <- get_peers()],
    erase(peers),
    emqx_guard_ct_helper:end_case(),
    emqx_guard_fault_proxy:stop(?config(proxy, Config)),
    emqx_guard_s3_helper:stop(?config(s3, Config)),
    exit(maps:get(pid, ?config(hook, Config)), kill),
    ok.

%%--------------------------------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------------------------------

%% The S3 endpoint accepts connections and never answers: `backup_now' answers while the upload
%% is still pending, with the local backup's alarm, status and notification already there; the
%% next scheduled fire runs on time. Then the endpoint answers 503 for a while (the job fails,
%% is tried again and fails again: one alarm, one `offsite_failed'), then comes back: both
%% backups are uploaded, the alarm clears and `offsite_ok' follows exactly once.
backup_answers_while_the_upload_hangs(Config) ->
    #{proxy := Proxy, s3 := S3, hook := Hook} = maps:from_list(Config),
    preset(Config),
    set_now(?T0),
    start_app(fake_opts(#{})),
    Wake = next_timer(wake),
    %% a node without a backup looks at the bucket when it starts
    offsite_idle(),
    ?assertMatch([{<<"GET">>, <<"/backups?list-type=2", _/binary>>, forward}], emqx_guard_fault_proxy:requests(Proxy)),
    ok = emqx_guard_fault_proxy:set_mode(Proxy, hang),
    {Micros, Answer} = timer:tc(fun() -> ctl(["backup_now"]) end),
    Out = emqx_guard_ct_helper:result(Answer),
    ?assertMatch("Backup done in " ++ _, hd(Out)),
    %% in the local backup's time (a fraction of a second here), far from the 60 s the upload's
    %% request may hang: 15 s leaves a loaded machine its margin and still tells the two apart
    ?assert(Micros < 15000000, {backup_now_took_ms, Micros div 1000}),
    ?assert(lists:member("  off-site: queued for upload to s3://backups/ct (guard backup_status shows it)", Out), Out),
    First = file_of(Out),
    %% the upload was not waited for: its request hangs at the server
    wait_until(fun() -> hangs(Proxy, First) end),
    Status = ctl(["backup_status"]),
    ?assert(has_prefix("  uploads: uploading " ++ First ++ " (since ", Status), Status),
    %% the local backup's alarm, status and notification are there at once
    ?assertEqual([], emqx_alarm:active_alarms()),
    ?assert(lists:any(fun(L) -> lists:prefix("last run: ", L) andalso lists:suffix(", ok (manual)", L) end, Status), Status),
    wait_until(fun() -> events(Hook) =:= [backup_ok] end),
    ?assertMatch(#{running := #{file := _}}, emqx_guard_offsite_queue:status()),

    %% the next scheduled fire runs at its time, and is not skipped
    set_now({{2026, 11, 25}, {12, 0, 0}}),
    deliver(Wake),
    wait_idle(),
    ?assertEqual(2, emqx_mgmt_data_backup:export_count()),
    #{counts := Counts, last_run := #{trigger := scheduled, result := ok, file := SecondBin}} = emqx_guard_scheduler:status(),
    ?assertEqual(#{ok => 2, failed => 0, skipped => 0}, Counts),
    Second = binary_to_list(SecondBin),
    ?assert(has_prefix("  uploads: uploading " ++ First, ctl(["backup_status"]))),
    ?assert(lists:any(fun(L) -> lists:suffix("; waiting: " ++ Second, L) end, ctl(["backup_status"]))),
    wait_until(fun() -> events(Hook) =:= [backup_ok, backup_ok] end),

    %% 503 for a while: the hanging request breaks, every try gets 503, the job is tried again
    %% (three tries a job: at least two jobs failed)
    ok = emqx_guard_fault_proxy:set_mode(Proxy, {status, 503}),
    wait_until(fun() -> length([x || {_, _, {status, 503}} <- emqx_guard_fault_proxy:requests(Proxy)]) >= 6 end),
    ?assertMatch([#{name := ?ALARM, message := <<"emqx_guard: off-site copy failed: upload of ", _/binary>>}],
                 emqx_alarm:active_alarms()),
    wait_until(fun() -> lists:member(offsite_failed, events(Hook)) end),
    Failing = ctl(["backup_status"]),
    ?assert(has_prefix("  last error: ", Failing), Failing),
    ?assertEqual([], emqx_guard_s3_helper:objects(S3)),

    %% the server is back: both backups uploaded, the alarm cleared, offsite_ok once
    ok = emqx_guard_fault_proxy:set_mode(Proxy, forward),
    wait_until(fun() -> emqx_guard_s3_helper:objects(S3) =:= lists:sort([First, Second]) end),
    wait_until(fun() -> lists:member(offsite_ok, events(Hook)) end),
    offsite_idle(),
    ?assertEqual([], emqx_alarm:active_alarms()),
    ?assert(lists:any(fun(#{name := N}) -> N =:= ?ALARM end, emqx_alarm:history())),
    Third = file_of(ctl(["backup_now"])),
    offsite_idle(),
    ?assertEqual(lists:sort([First, Second, Third]), emqx_guard_s3_helper:objects(S3)),
    wait_until(fun() -> length(events(Hook)) >= 5 end),
    ?assertEqual([backup_ok, backup_ok, offsite_failed, offsite_ok, backup_ok], events(Hook)),
    ?assert(has_prefix("  newest backup off-site: " ++ Third ++ ", uploaded at ", ctl(["backup_status"]))).

%% `backup_remote off' while an upload hangs (after a failure raised the alarm, and with a newer
%% backup waiting): the job ends at once (its NIF job cancelled, not timed out), what waited is
%% dropped and logged, the alarm is cleared, no object reaches the bucket, and a restart has
%% nothing to resume.
remote_off_ends_a_hanging_upload(Config) ->
    #{proxy := Proxy, s3 := S3} = maps:from_list(Config),
    preset(Config),
    set_now(?T0),
    start_app(fake_opts(#{})),
    offsite_idle(),
    ok = emqx_guard_fault_proxy:set_mode(Proxy, {status, 503}),
    First = file_of(ctl(["backup_now"])),
    wait_until(fun() -> [N || #{name := N} <- emqx_alarm:active_alarms()] =:= [?ALARM] end),
    %% the job's next try hangs, and a newer backup waits behind it
    ok = emqx_guard_fault_proxy:set_mode(Proxy, hang),
    wait_until(fun() -> hangs(Proxy, First) end),
    Second = file_of(ctl(["backup_now"])),
    ?assertMatch(#{running := #{file := _}, waiting := [_]}, emqx_guard_offsite_queue:status()),
    %% the upload's NIF job runs (the run's own jobs end a moment after their results)
    wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 1 end),

    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    {ok, Logs} = emqx_guard_test_logs:start(),
    ?assertEqual(["backup_remote = off (backups stay on this cluster's disks only)"], ctl(["backup_remote", "off"])),
    %% ended at once: the NIF job was cancelled (its request would hang for a minute)
    wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 0 end),
    Reports = emqx_guard_test_logs:reports(emqx_guard_test_logs:stop(Logs)),
    ok = logger:set_primary_config(level, Level),
    ?assertMatch([#{job_ended := true}], [R || R = #{msg := emqx_guard_offsite_dropped} <- Reports]),
    [#{files := Dropped}] = [R || R = #{msg := emqx_guard_offsite_dropped} <- Reports],
    ?assertEqual(lists:sort([list_to_binary(First), list_to_binary(Second)]), Dropped),
    ?assertMatch(#{running := undefined, waiting := [], retry_at := undefined, state := #{pending := [], failing := false}},
                 emqx_guard_offsite_queue:status()),
    ?assertEqual([], emqx_alarm:active_alarms()),
    ?assert(lists:any(fun(#{name := N}) -> N =:= ?ALARM end, emqx_alarm:history())),
    ?assertNot(lists:any(fun(L) -> lists:prefix("off-site", L) orelse lists:prefix("  uploads", L) end, ctl(["backup_status"]))),
    %% the hanging request never reached the server, and nothing arrives later
    ok = emqx_guard_fault_proxy:set_mode(Proxy, forward),
    ?assertEqual([], emqx_guard_s3_helper:objects(S3)),
    ?assertEqual([First, Second], emqx_guard_ct_helper:backups()),
    %% nothing to resume at the next start
    Before = length(emqx_guard_fault_proxy:requests(Proxy)),
    stop_app(),
    start_app(fake_opts(#{})),
    ?assertMatch(#{running := undefined, state := #{pending := []}}, emqx_guard_offsite_queue:status()),
    ?assertEqual(Before, length(emqx_guard_fault_proxy:requests(Proxy))),
    ?assertEqual([], emqx_alarm:active_alarms()).

%% A node that stops with uploads still to do resumes them when it starts again, and uploads
%% nothing twice. (a) The server stored an upload but the answer was lost when the node died
%% (halted): the resumed upload finds the object with the same SHA-256 and size and does not
%% send it again (`reused'). (b) An upload hangs with a newer backup waiting when the node stops:
%% after the restart both are uploaded, each once.
restart_resumes_without_uploading_twice(Config) ->
    #{proxy := Proxy, s3 := S3} = maps:from_list(Config),
    Name = "guard_offsite_resume_" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive])),
    Dir = filename:join(?config(data_dir, Config), "peer"),

    %% (a)
    P1 = start_node(Name, Dir, Config),
    wait_until(fun() -> queue_idle(P1) end),
    ok = emqx_guard_fault_proxy:set_mode(Proxy, {swallow, <<"PUT">>}),
    First = file_of(peer_call(P1, ?MODULE, peer_ctl, [["backup_now"]])),
    wait_until(fun() -> emqx_guard_s3_helper:objects(S3) =:= [First] end),
    ?assertMatch(#{running := #{file := _}}, peer_call(P1, ?MODULE, peer_queue_status, [])),
    halt_node(P1, Name),
    ok = emqx_guard_fault_proxy:set_mode(Proxy, forward),
    P2 = start_node(Name, Dir, Config),
    wait_until(fun() -> queue_idle(P2) end),
    #{state := #{last_upload := LastUpload, pending := []}} = peer_call(P2, ?MODULE, peer_queue_status, []),
    ?assertMatch(#{file := _}, LastUpload),
    ?assertEqual(list_to_binary(First), maps:get(file, LastUpload)),
    ?assertEqual([First], emqx_guard_s3_helper:objects(S3)),
    %% the resumed upload found the object with the same SHA-256 and size: not sent again
    ?assertEqual(1, puts(Proxy, First)),
    ?assertMatch(#{reused := true}, LastUpload),
    ?assert(has_prefix("  newest backup off-site: " ++ First ++ ", uploaded at ", peer_call(P2, ?MODULE, peer_ctl, [["backup_status"]]))),
    ?assert(lists:any(fun(L) -> lists:suffix("(already there with the same SHA-256: not sent again)", L) end,
                      peer_call(P2, ?MODULE, peer_ctl, [["backup_status"]]))),

    %% (b)
    ok = emqx_guard_fault_proxy:set_mode(Proxy, hang),
    Second = file_of(peer_call(P2, ?MODULE, peer_ctl, [["backup_now"]])),
    wait_until(fun() -> hangs(Proxy, Second) end),
    Third = file_of(peer_call(P2, ?MODULE, peer_ctl, [["backup_now"]])),
    ?assertMatch(#{waiting := [_]}, peer_call(P2, ?MODULE, peer_queue_status, [])),
    ok = peer:stop(P2),
    ok = emqx_guard_fault_proxy:set_mode(Proxy, forward),
    P3 = start_node(Name, Dir, Config),
    wait_until(fun() -> emqx_guard_s3_helper:objects(S3) =:= lists:sort([First, Second, Third]) end),
    wait_until(fun() -> queue_idle(P3) end),
    ?assertEqual(1, puts(Proxy, Second)),
    ?assertEqual(1, puts(Proxy, Third)),
    ?assertMatch(#{state := #{pending := [], failing := false}}, peer_call(P3, ?MODULE, peer_queue_status, [])).

%%--------------------------------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------------------------------

%% The plugin's settings before it starts: a daily schedule, the bucket behind the proxy, the
%% webhook receiver for every backup and off-site event (no dead-man watch: the fake clock).
preset(Config) ->
    ok = emqx_guard_settings:save(settings(Config)).

settings(Config) ->
    Port = emqx_guard_fault_proxy:port(?config(proxy, Config)),
    maps:merge(emqx_guard_settings:defaults(), #{
        backup_cron => <<"0 12 * * *">>,
        backup_timezone => <<"UTC">>,
        backup_remote_type => <<"s3">>,
        backup_remote_bucket => <<"backups">>,
        backup_remote_prefix => <<"ct">>,
        backup_remote_endpoint => iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)]),
        backup_remote_access_key => emqx_guard_s3_helper:access_key(),
        backup_remote_secret_key => emqx_guard_s3_helper:secret_key(),
        backup_remote_path_style => true,
        notify_webhook_url => maps:get(url, ?config(hook, Config)),
        notify_on_success => true,
        notify_dead_man => false
    }).

file_of(Out) ->
    ["  file: " ++ Path] = [L || "  file: " ++ _ = L <- Out],
    filename:basename(Path).

%% The request path of an object of the bucket (path style).
key(File) ->
    list_to_binary("/backups/ct/" ++ File).

%% How many times the object of File was PUT to the server itself (not stopped at the proxy).
puts(Proxy, File) ->
    Key = key(File),
    length([x || {<<"PUT">>, K, Mode} <- emqx_guard_fault_proxy:requests(Proxy), K =:= Key,
                 Mode =/= hang, not is_tuple(Mode) orelse element(1, Mode) =:= swallow]).

%% A request about the object of File (the upload's first look at it, or the upload) hangs.
hangs(Proxy, File) ->
    Key = key(File),
    lists:any(fun({_, K, Mode}) -> K =:= Key andalso Mode =:= hang end, emqx_guard_fault_proxy:requests(Proxy)).

has_prefix(Prefix, Lines) ->
    lists:any(fun(L) -> lists:prefix(Prefix, L) end, Lines).

offsite_idle() ->
    wait_until(fun() ->
        case emqx_guard_offsite_queue:status() of
            #{running := undefined, waiting := []} -> true;
            _ -> false
        end
    end).

%%--------------------------------------------------------------------------------------------
%% The webhook receiver: answers 200 to every POST and records the event of each, in order.
%%--------------------------------------------------------------------------------------------

start_receiver() ->
    Test = self(),
    Pid = spawn(fun() ->
        {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}, {packet, http_bin}, {reuseaddr, true}]),
        {ok, Port} = inet:port(L),
        T = ets:new(?MODULE, [public, ordered_set]),
        Test ! {receiver, self(), Port, T},
        receiver_loop(L, T)
    end),
    receive
        {receiver, Pid, Port, T} ->
            #{pid => Pid, table => T, url => iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/hook?token=ct"])}
    after 5000 -> error(receiver_did_not_start)
    end.

receiver_loop(L, T) ->
    {ok, S} = gen_tcp:accept(L),
    #{body := Body} = http_read(S, #{headers => #{}}),
    {ok, #{<<"event">> := Event}} = emqx_guard_json:decode(Body),
    true = ets:insert(T, {erlang:unique_integer([monotonic]), binary_to_atom(Event)}),
    Resp = <<"{\"ok\":true}">>,
    ok = gen_tcp:send(S, ["HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ",
                          integer_to_list(byte_size(Resp)), "\r\nconnection: close\r\n\r\n", Resp]),
    ok = gen_tcp:close(S),
    receiver_loop(L, T).

http_read(S, Req) ->
    case gen_tcp:recv(S, 0, 10000) of
        {ok, {http_request, _Method, _Path, _Vsn}} ->
            http_read(S, Req);
        {ok, {http_header, _, Name, _, Value}} ->
            Key = string:lowercase(if is_atom(Name) -> atom_to_binary(Name); true -> Name end),
            http_read(S, Req#{headers => (maps:get(headers, Req))#{Key => Value}});
        {ok, http_eoh} ->
            Len = binary_to_integer(maps:get(<<"content-length">>, maps:get(headers, Req))),
            ok = inet:setopts(S, [{packet, raw}]),
            {ok, Body} = gen_tcp:recv(S, Len, 10000),
            Req#{body => Body}
    end.

%% The events the receiver got, oldest first.
events(#{table := T}) ->
    [E || {_, E} <- ets:tab2list(T)].

%%--------------------------------------------------------------------------------------------
%% The peer node
%%--------------------------------------------------------------------------------------------

%% Starts a node named Name with the plugin on data dir Dir (its settings are written the first
%% time only: a restart finds its own). Not linked: a halted node must not take the case down.
start_node(Name, Dir, Config) ->
    CodePath = lists:usort([filename:dirname(code:which(M)) || M <- [emqx_guard_app, emqx, ?MODULE]]),
    Args = lists:append([["-pa", D] || D <- CodePath]),
    wait_until(fun() -> name_free(Name) end),
    {ok, Peer, _Node} = peer:start(#{name => Name, longnames => false, connection => standard_io, args => Args}),
    put(peers, [Peer | get_peers()]),
    ok = peer_call(Peer, ?MODULE, peer_setup, [Dir, settings(Config), ?ENV]),
    Peer.

%% The node dies at once, as with kill -9 or a power loss: nothing of the plugin runs on stop.
halt_node(Peer, Name) ->
    MRef = monitor(process, Peer),
    ok = peer:cast(Peer, erlang, halt, [0]),
    receive
        {'DOWN', MRef, process, Peer, _} -> ok
    after 30000 -> error(node_did_not_halt)
    end,
    wait_until(fun() -> name_free(Name) end).

name_free(Name) ->
    case net_adm:names() of
        {ok, Names} -> not lists:keymember(Name, 1, Names);
        {error, _} -> true
    end.

get_peers() ->
    case get(peers) of
        undefined -> [];
        Peers -> Peers
    end.

peer_call(Peer, M, F, A) ->
    peer:call(Peer, M, F, A, 60000).

queue_idle(Peer) ->
    case peer_call(Peer, ?MODULE, peer_queue_status, []) of
        #{running := undefined, waiting := []} -> true;
        _ -> false
    end.

%% Inside the peer: the EMQX stand-ins on Dir, the suite's environment, the settings (when
%% none are stored yet), the plugin started.
-spec peer_setup(file:filename(), map(), [{atom(), term()}]) -> ok.
peer_setup(Dir, Settings, Env) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = emqx:set_data_dir(Dir),
    ok = mria_rlog:set_role(core),
    {ok, _} = emqx_ctl:start(),
    ok = emqx_alarm:reset(),
    ok = emqx_mgmt_data_backup:reset(),
    ok = application:load(emqx_guard),
    [ok = application:set_env(emqx_guard, K, V) || {K, V} <- Env],
    case filelib:is_file(emqx_guard_settings:settings_file()) of
        true -> ok;
        false -> ok = emqx_guard_settings:save(Settings#{notify_webhook_url => <<>>})
    end,
    {ok, _} = application:ensure_all_started(emqx_guard),
    ok.

-spec peer_ctl([string()]) -> [string()].
peer_ctl(Args) ->
    emqx_guard_ct_helper:ctl(Args).

-spec peer_queue_status() -> map() | undefined.
peer_queue_status() ->
    emqx_guard_offsite_queue:status().
