%% @doc EUnit property test (hand-rolled, `rand'): every setting's stored form validates again.
%%
%% For every key of the schema (`emqx_guard_settings:keys/0': backup, off-site, notification and
%% `$SYS' event keys, whatever modules add to it) random valid NON-default values are generated as
%% a person or the dashboard would give them (text, odd case and blanks, lists or one line, integers), turned
%% into their stored form with `emqx_guard_settings:validate/2', then taken through the life of a
%% setting: the stored form validates to itself; the settings file is written and read back
%% (`save/1', `load/0': no value falls back to its default); and the loaded map is adopted by a
%% node holding the defaults the way `emqx_guard_settings_sync' adopts another node's settings
%% (`emqx_guard_settings:change/1' with the whole map), which must give the same settings.
%%
%% The seed is printed with any failure; `EMQX_GUARD_SEED=<seed> rebar3 eunit
%% --module=emqx_guard_settings_prop_tests' repeats the run.
-module(emqx_guard_settings_prop_tests).

-include_lib("eunit/include/eunit.hrl").

-define(RUNS, 100).
%% The age recipient alphabet (bech32).
-define(BECH32, "qpzry9x8gf2tvdw0s3jn54khce6mua7l").
-define(ZONES, [<<"UTC">>, <<"Europe/Berlin">>, <<"America/New_York">>, <<"Asia/Shanghai">>, <<"Australia/Lord_Howe">>,
    <<"Asia/Kolkata">>]).

%% The types of the backup settings (the notification and off-site keys declare theirs).
backup_types() ->
    #{
        backup_cron => cron,
        backup_keep => keep,
        backup_remote_keep => remote_keep,
        backup_pins => pins,
        backup_timezone => zone,
        backup_catchup => catchup,
        export_timeout => timeout,
        backup_io_limit => rate,
        backup_plugins_max_size => rate
    }.

every_stored_setting_round_trips_test_() ->
    {timeout, 120, fun every_stored_setting_round_trips/0}.

every_stored_setting_round_trips() ->
    Seed = seed(),
    _ = rand:seed(exsss, Seed),
    with_data_dir(fun(_Dir) ->
        lists:foreach(
            fun(Run) ->
                try
                    round_trip(Run)
                catch
                    Class:Reason:Stack ->
                        io:format(user, "~nsettings property failed: seed ~B, run ~B~n", [Seed, Run]),
                        erlang:raise(Class, {settings_property_failed, #{seed => Seed, run => Run,
                            repeat => "EMQX_GUARD_SEED=" ++ integer_to_list(Seed), reason => Reason}}, Stack)
                end
            end,
            lists:seq(1, ?RUNS)
        )
    end).

round_trip(Run) ->
    Defaults = emqx_guard_settings:defaults(),
    Types = types(),
    %% the hosts first: a chat URL over plain http must name one of them
    Keys = [notify_http_hosts | emqx_guard_settings:keys() -- [notify_http_hosts]],
    Generated = lists:foldl(
        fun(Key, Acc) ->
            Type = maps:get(Key, Types, untyped),
            {Raw, Stored} = non_default(Key, Type, maps:get(Key, Defaults), Acc),
            Acc#{Key => Stored, {raw, Key} => Raw}
        end,
        #{},
        Keys
    ),
    Settings = maps:with(Keys, Generated),
    ?assertEqual(lists:sort(maps:keys(Defaults)), lists:sort(maps:keys(Settings))),
    %% every stored form validates, to itself
    [?assertEqual({ok, V}, emqx_guard_settings:validate(K, V), {K, maps:get({raw, K}, Generated)})
     || {K, V} <- maps:to_list(Settings)],
    %% the settings file: written, read back whole
    ok = emqx_guard_settings:save(Settings),
    ok = emqx_guard_settings:forget(),
    Loaded = emqx_guard_settings:load(),
    [?assertEqual(maps:get(K, Settings), maps:get(K, Loaded), {loaded, K}) || K <- Keys],
    %% another node, holding the defaults, adopts them as emqx_guard_settings_sync does
    ok = emqx_guard_settings:save(Defaults),
    ok = emqx_guard_settings:forget(),
    case emqx_guard_settings:change(Loaded) of
        {ok, Old, Adopted} ->
            ?assertEqual(Defaults, Old),
            [?assertEqual(maps:get(K, Settings), maps:get(K, Adopted), {adopted, K}) || K <- Keys],
            ?assertEqual(Adopted, emqx_guard_settings:load());
        {error, Why} ->
            error({not_adopted, Run, Why})
    end,
    ok = emqx_guard_settings:forget().

%% Every key with its type: the backup keys here, the others as their modules declare them.
types() ->
    Declared = maps:from_list(
        [{K, T} || {K, T, _} <- emqx_guard_notify_config:specs() ++ emqx_guard_offsite_config:specs() ++
                                 emqx_guard_observe_config:specs()]
    ),
    maps:merge(Declared, backup_types()).

%% A raw value and its stored form, different from the default (a few tries: some generators
%% can hit it by chance).
non_default(Key, Type, Default, Ctx) ->
    non_default(Key, Type, Default, Ctx, 20).

non_default(Key, Type, _Default, _Ctx, 0) ->
    error({only_defaults_generated, Key, Type});
non_default(Key, Type, Default, Ctx, Tries) ->
    Raw = gen(Type, Key, Default, Ctx),
    case emqx_guard_settings:validate(Key, Raw) of
        {ok, Default} -> non_default(Key, Type, Default, Ctx, Tries - 1);
        {ok, Stored} -> {Raw, Stored};
        {error, Why} -> error({generated_value_refused, Key, Type, Raw, Why})
    end.

%%--------------------------------------------------------------------
%% Generators: a valid value of each type, written as a person might

gen(cron, _K, _D, _Ctx) ->
    Fields = [
        field(0, 59),
        field(0, 23),
        oneof(["*", integer_to_list(int(1, 28)), "1-15", "*/2"]),
        oneof(["*", integer_to_list(int(1, 12)), "1-6", "jan,jul"]),
        oneof(["*", integer_to_list(int(0, 6)), "1-5", "mon-fri", "sat,sun"])
    ],
    text(spaced(lists:join(oneof([" ", "  "]), Fields)));
gen(keep, _K, _D, _Ctx) ->
    policy();
gen(remote_keep, _K, _D, _Ctx) ->
    %% `local' is the default: a policy
    policy();
gen(pins, _K, _D, _Ctx) ->
    Names = [export_name() || _ <- lists:seq(1, int(1, 4))],
    oneof([[text(N) || N <- Names], text(lists:join(oneof([" ", ", ", ","]), Names))]);
gen(zone, _K, _D, _Ctx) ->
    text(spaced(oneof(?ZONES)));
gen(catchup, _K, _D, _Ctx) ->
    duration(int(0, 366 * 86400));
gen(timeout, _K, _D, _Ctx) ->
    duration(int(1, 366 * 86400));
gen(rate, _K, _D, _Ctx) ->
    {Unit, Min, Max} = oneof([{"MB", 1, 1000000}, {"MiB", 1, 953674}, {"GB", 1, 1000}, {"GiB", 1, 931},
        {"kB", 1000, 1000000000}, {"KiB", 977, 976562500}, {"B", 1000000, 1000000000000}, {"", 1000000, 1000000000000}]),
    N = int(Min, Max),
    case Unit of
        "" ->
            %% a bare number of bytes per second, as text or as the number
            oneof([N, text(integer_to_list(N))]);
        _ ->
            text(spaced([integer_to_list(N), oneof(["", " "]), case_of(Unit), oneof(["/s", "/S", ""])]))
    end;
gen(host, _K, _D, _Ctx) ->
    text(spaced(oneof([hostname(), ip()])));
gen(port, _K, _D, _Ctx) ->
    P = int(1, 65535),
    oneof([P, text(spaced(integer_to_list(P)))]);
gen(smtp_tls, _K, _D, _Ctx) ->
    text(spaced(case_of(oneof(["none", "tls", "starttls"]))));
gen(text, _K, _D, _Ctx) ->
    text(spaced(word(1, 12) ++ oneof(["", "-ops", [16#e9, $t, 16#e9]])));
gen(password, _K, _D, _Ctx) ->
    %% kept as given: blanks at either end are part of it
    text(oneof(["", " "]) ++ printable(1, 24) ++ oneof(["", " "]));
gen(secret, _K, _D, _Ctx) ->
    text(spaced(secret_text()));
gen(address, _K, _D, _Ctx) ->
    text(spaced(oneof([address(), "emqx guard <" ++ address() ++ ">"])));
gen(addresses, _K, _D, _Ctx) ->
    Plain = [address() || _ <- lists:seq(1, int(1, 3))],
    oneof([
        [text(A) || A <- Plain],
        [text(A) || A <- ["Ops Team <" ++ address() ++ ">" | Plain]],
        text(lists:join(oneof([", ", ",", "; ", " "]), Plain))
    ]);
gen(any_url, _K, _D, _Ctx) ->
    text(spaced(oneof(["http", "https", "HTTPS"]) ++ "://" ++ hostname() ++ port_part() ++ path_part()));
gen(url, _K, _D, Ctx) ->
    Hosts = maps:get(notify_http_hosts, Ctx, []),
    Base = oneof(
        ["https://" ++ hostname() ++ port_part(), "http://127.0.0.1:" ++ integer_to_list(int(1, 65535)), "http://[::1]"] ++
            ["http://" ++ binary_to_list(H) || H <- Hosts]
    ),
    text(spaced(Base ++ path_part()));
gen(path, _K, _D, _Ctx) ->
    text(spaced("/etc/emqx/certs/" ++ word(1, 10) ++ ".pem"));
gen(bool, _K, Default, _Ctx) ->
    Value = not Default,
    oneof([Value, text(case_of(oneof(bool_words(Value))))]);
gen(mobiles, _K, _D, _Ctx) ->
    Mobiles = [mobile() || _ <- lists:seq(1, int(1, 3))],
    oneof([[text(M) || M <- Mobiles], text(lists:join(oneof([", ", ",", " ", ";"]), Mobiles))]);
gen(hosts, _K, _D, _Ctx) ->
    Hosts = [hostname() || _ <- lists:seq(1, int(1, 3))],
    oneof([[text(case_of(H)) || H <- Hosts], text(lists:join(", ", Hosts))]);
gen(channel_id, _K, _D, _Ctx) ->
    text(spaced(oneof(["C", "G", "#"]) ++ word(6, 11)));
gen(remote_type, _K, _D, _Ctx) ->
    text(spaced(case_of("s3")));
gen(name, _K, _D, _Ctx) ->
    text(spaced(word(1, 8) ++ oneof(["", "-1", ".backups", "_x"])));
gen(prefix, _K, _D, _Ctx) ->
    text(oneof(["", "/"]) ++ word(1, 6) ++ "/" ++ word(1, 6) ++ oneof(["", "/"]));
gen(endpoint, _K, _D, _Ctx) ->
    text(oneof(["https://s3." ++ word(2, 8) ++ ".example.com", "http://127.0.0.1:" ++ integer_to_list(int(1, 65535))]) ++
        oneof(["", "/"]));
gen(recipient, _K, _D, _Ctx) ->
    text("age1" ++ [lists:nth(int(1, 32), ?BECH32) || _ <- lists:seq(1, 58)]);
gen(concurrency, _K, _D, _Ctx) ->
    N = int(1, 64),
    oneof([N, text(spaced(integer_to_list(N)))]);
gen(Type, Key, _D, _Ctx) ->
    error({no_generator, Key, Type}).

%% A duration in seconds written as a bare number, as text of units (`1d2h', `90M'), or as the
%% integer the settings store.
duration(S) ->
    Units = [{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}],
    {Parts, 0} = lists:foldl(
        fun({F, U}, {Acc, Left}) ->
            case Left div F of
                0 -> {Acc, Left};
                N -> {Acc ++ [integer_to_list(N), case_of(U)], Left rem F}
            end
        end,
        {[], S},
        Units
    ),
    Units1 = case Parts of [] -> "0"; _ -> Parts end,
    oneof([S, text(spaced(integer_to_list(S))), text(spaced(Units1)), text(emqx_guard_render:duration_s(S))]).

%% One cron field: a value, a range, a list or a step.
field(Min, Max) ->
    A = int(Min, Max - 1),
    B = int(A + 1, Max),
    oneof([
        integer_to_list(A),
        integer_to_list(A) ++ "-" ++ integer_to_list(B),
        integer_to_list(A) ++ "," ++ integer_to_list(B),
        "*/" ++ integer_to_list(int(2, 12))
    ]).

bool_words(true) -> ["on", "true", "yes", "1"];
bool_words(false) -> ["off", "false", "no", "0"].

hostname() ->
    word(1, 10) ++ "." ++ oneof(["example.com", "internal", "example.org"]).

ip() ->
    lists:flatten(io_lib:format("10.~B.~B.~B", [int(0, 255), int(0, 255), int(1, 254)])).

address() ->
    word(1, 10) ++ oneof(["", ".ops", "+guard"]) ++ "@" ++ hostname().

mobile() ->
    oneof(["1", "+86-1"]) ++ [$0 + int(0, 9) || _ <- lists:seq(1, 10)].

port_part() ->
    oneof(["", ":" ++ integer_to_list(int(1, 65535))]).

path_part() ->
    oneof(["", "/"]) ++ oneof(["", "/hook/" ++ word(4, 20), "/robot/send?access_token=" ++ word(8, 30),
        "/cgi-bin/webhook/send?key=" ++ word(8, 30) ++ "&x=1"]).

%% A secret as services hand them out, with the characters that need care when written to a
%% file or shown: quotes, backslash, tilde, non-ASCII.
secret_text() ->
    [oneof([$a, $Z, $9]) | printable(0, 30)] ++ [oneof([$x, $=, 16#4e2d])].

printable(Min, Max) ->
    Alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" ++
        [16#e9, 16#df, 16#4e2d, 16#1F512],
    [lists:nth(int(1, length(Alphabet)), Alphabet) || _ <- lists:seq(1, int(Min, Max))].

word(Min, Max) ->
    Alphabet = "abcdefghijklmnopqrstuvwxyz0123456789",
    [lists:nth(int(1, 26), Alphabet) | [lists:nth(int(1, length(Alphabet)), Alphabet) || _ <- lists:seq(2, int(Min, Max))]].

%% Blanks around a value, as a person types them (they are trimmed).
spaced(Chars) ->
    oneof(["", " "]) ++ unicode:characters_to_list(Chars) ++ oneof(["", "  "]).

case_of(Chars) ->
    oneof([Chars, string:uppercase(Chars), string:lowercase(Chars)]).

%% Text as the command line (binary) or an Erlang caller (charlist) gives it.
text(Chars) ->
    Flat = unicode:characters_to_list(Chars),
    oneof([unicode:characters_to_binary(Flat), Flat]).

int(Min, Max) ->
    Min + rand:uniform(Max - Min + 1) - 1.

oneof(List) ->
    lists:nth(rand:uniform(length(List)), List).

seed() ->
    case os:getenv("EMQX_GUARD_SEED") of
        false -> erlang:phash2({erlang:system_time(), self(), make_ref()});
        Text -> list_to_integer(Text)
    end.

with_data_dir(Fun) ->
    Dir = filename:join(["/tmp", "emqx_guard_eunit_prop_" ++ integer_to_list(erlang:unique_integer([positive]))]),
    ok = emqx:set_data_dir(Dir),
    try
        Fun(Dir)
    after
        _ = emqx_guard_settings:forget(),
        _ = file:del_dir_r(Dir),
        emqx:reset()
    end.

%% A retention policy as a person writes it: a bare count, or restic-style rules in any order,
%% any case, separated by spaces or commas (some zero, never all).
policy() ->
    case int(1, 4) of
        1 ->
            N = int(1, 100000),
            oneof([N, text(spaced(integer_to_list(N)))]);
        _ ->
            Counts = [{R, int(0, 400)} || R <- ["last", "hourly", "daily", "weekly", "monthly", "yearly"], int(1, 2) =:= 1],
            Within = [{"within", within()} || int(1, 3) =:= 1],
            Rules0 = [case_of(R) ++ "=" ++ V || {R, V} <- [{R, integer_to_list(N)} || {R, N} <- Counts] ++ Within],
            Rules =
                case Counts =:= [] orelse lists:any(fun({_, N}) -> N > 0 end, Counts) orelse Within =/= [] of
                    true when Rules0 =/= [] -> Rules0;
                    _ -> ["daily=" ++ integer_to_list(int(1, 30)) | Rules0]
                end,
            text(spaced(lists:join(oneof([" ", ", ", ","]), shuffle(Rules))))
    end.

within() ->
    Parts = [integer_to_list(int(1, 99)) ++ U || U <- ["y", "m", "d", "h"], int(1, 2) =:= 1],
    case Parts of
        [] -> integer_to_list(int(1, 99)) ++ "d";
        _ -> lists:append(Parts)
    end.

%% An EMQX export name of a random (valid) time.
export_name() ->
    lists:flatten(io_lib:format("emqx-export-~4..0B-~2..0B-~2..0B-~2..0B-~2..0B-~2..0B.~3..0B.tar.gz",
        [int(2000, 2099), int(1, 12), int(1, 28), int(0, 23), int(0, 59), int(0, 59), int(0, 999)])).

shuffle(List) ->
    [X || {_, X} <- lists:sort([{rand:uniform(), X} || X <- List])].

