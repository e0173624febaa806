%% @doc The `emqx ctl guard' commands about off-site copies: `backup_remote' (show, set, off),
%% `backup_fetch <name> [identity=<path>]' (its steps printed as they come) and `backup_remote_prune
%% --confirm' (remote retention may delete what this node did not upload); `remote_line/2', one
%% off-site backup as retention's dry run shows it. The listing (`backup_list --remote') and the
%% off-site lines of `backup_status' are `emqx_guard_observe_cli''s; the off-site part of
%% `backup_prune --dry-run' is `emqx_guard_retention_cli''s. Parses and prints only; the secret
%% key is never printed (`emqx_guard_redact:settings/1').
-module(emqx_guard_offsite_cli).

-import(emqx_guard_cli, [line/1, error_line/1, error_reason/1]).

-export([cmd/1, usage_lines/0, remote_line/2]).

%% A listing, a dry run or a fetch: the NIF bounds every request; this bounds the whole.
-define(AWAIT_MS, 6 * 3600 * 1000).
%% `name=' of `backup_remote s3' and the setting each one sets.
-define(NAMES, [
    {<<"bucket">>, backup_remote_bucket},
    {<<"prefix">>, backup_remote_prefix},
    {<<"region">>, backup_remote_region},
    {<<"endpoint">>, backup_remote_endpoint},
    {<<"access_key">>, backup_remote_access_key},
    {<<"secret_key">>, backup_remote_secret_key},
    {<<"path_style">>, backup_remote_path_style},
    {<<"tls_verify">>, backup_remote_tls_verify},
    {<<"ca_file">>, backup_remote_ca_file},
    {<<"recipient">>, backup_remote_recipient},
    {<<"concurrency">>, backup_remote_concurrency}
]).

%% @doc The usage lines of these commands, in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [
        {"guard backup_remote [s3 key=value ... | off]",
            "Show or set where every verified backup is also copied: s3 bucket= access_key= secret_key= [prefix= region= "
            "endpoint= path_style=on tls_verify=on|off ca_file= recipient=age1... concurrency=4] (age-encrypted with a "
            "recipient; concurrency: parts in flight at once)"},
        {"guard backup_list --remote [--json]", "List the off-site backups, newest first, with size, time and encryption"},
        {"guard backup_fetch <name> [identity=<file>]",
            "Download an off-site backup into data/backup, decrypt and verify it, ready for 'emqx ctl data import'"},
        {"guard backup_remote_prune --confirm",
            "Let remote retention delete off-site backups this node did not upload (kept after a rebuild until then)"}
    ].

%% @doc Runs one of these commands (Args after `guard', as binaries); `not_mine' for any other.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"backup_remote">>]) -> show();
cmd([<<"backup_remote">>, <<"off">>]) -> set(emqx_guard_offsite_config:defaults());
cmd([<<"backup_remote">>, <<"s3">> | Pairs]) -> set_s3(Pairs);
cmd([<<"backup_remote">> | _]) -> error_line("expected backup_remote, backup_remote off or backup_remote s3 key=value ...");
cmd([<<"backup_fetch">>, Name]) -> fetch(Name, undefined);
cmd([<<"backup_fetch">>, Name, <<"identity=", Path/binary>>]) when Path =/= <<>> -> fetch(Name, Path);
cmd([<<"backup_fetch">> | _]) -> error_line("expected backup_fetch <name> [identity=<age identity file>]");
cmd([<<"backup_remote_prune">>, <<"--confirm">>]) -> confirm_prune();
cmd([<<"backup_remote_prune">> | _]) ->
    error_line(
        "expected backup_remote_prune --confirm: it lets remote retention delete off-site backups this node did not "
        "upload (guard backup_prune --dry-run shows which)"
    );
cmd(_) -> not_mine.

%%--------------------------------------------------------------------
%% backup_remote
%%--------------------------------------------------------------------

show() ->
    S = emqx_guard_redact:settings(emqx_guard_settings:get()),
    case emqx_guard_offsite_config:enabled(S) of
        false ->
            line("backup_remote = off (backups stay on this cluster's disks only)");
        true ->
            line("backup_remote = s3"),
            lists:foreach(
                fun({Name, Key}) -> line(["  ", Name, " = ", value_text(maps:get(Key, S))]) end,
                ?NAMES
            ),
            case maps:get(backup_remote_recipient, S) of
                <<>> -> line("  (no recipient: backups are uploaded unencrypted)");
                _ -> line("  (uploads are encrypted with age for the recipient; objects are named <export>.age)")
            end
    end.

value_text(true) -> <<"on">>;
value_text(false) -> <<"off">>;
value_text(V) when is_integer(V) -> integer_to_list(V);
value_text(V) when is_binary(V) -> [$", V, $"].

%% Every key not given goes back to its default: the destination is set as a whole.
set_s3(Pairs) ->
    case changes(Pairs, #{}) of
        {ok, Changes} -> set(maps:merge(emqx_guard_offsite_config:defaults(), Changes#{backup_remote_type => <<"s3">>}));
        {error, Why} -> error_reason(Why)
    end.

changes([], Acc) ->
    {ok, Acc};
changes([Pair | Rest], Acc) ->
    case binary:split(Pair, <<"=">>) of
        [Name, Value] ->
            case lists:keyfind(Name, 1, ?NAMES) of
                {Name, Key} ->
                    changes(Rest, Acc#{Key => Value});
                false ->
                    Known = lists:join(", ", [N || {N, _} <- ?NAMES]),
                    emqx_guard_cli:bad_argument(["unknown key \"", hd(emqx_guard_redact:args([Name])), "\" (use ", Known, ")"])
            end;
        _ ->
            emqx_guard_cli:bad_argument(["expected key=value, got \"", hd(emqx_guard_redact:args([Pair])), "\""])
    end.

set(Changes) ->
    case emqx_guard_settings_sync:update(Changes) of
        {ok, _New, Unreached} ->
            show(),
            lists:foreach(fun({Node, Why}) -> line(["Warning: not applied on ", atom_to_binary(Node), ": ", Why]) end, Unreached);
        {error, Why} ->
            error_reason(Why)
    end.

%%--------------------------------------------------------------------
%% backup_remote_prune --confirm
%%--------------------------------------------------------------------

confirm_prune() ->
    case emqx_guard_offsite_queue:confirm_retention() of
        {ok, Where} ->
            Policy = emqx_guard_retention:remote_text(emqx_guard_settings:get()),
            line(text("Remote retention now applies to every backup in ~ts: it keeps what \"~ts\" keeps there, whoever "
                      "uploaded them. It runs now, in the background (guard backup_status shows it).", [Where, Policy]));
        {error, Why} ->
            error_reason(Why)
    end.

%% @doc One off-site backup as the listings show it: object name, size, time, encryption.
-spec remote_line(binary(), #{name := binary(), size := non_neg_integer(), mtime := integer(), encrypted := boolean(),
    atom() => term()}) -> binary().
remote_line(Zone, #{name := Name, size := Size, mtime := MTime, encrypted := Encrypted}) ->
    Enc =
        case Encrypted of
            true -> <<"encrypted (age)">>;
            false -> <<"not encrypted">>
        end,
    iolist_to_binary(["  ", lists:join("  ", [Name, emqx_guard_render:size(Size), emqx_guard_render:in_zone(Zone, MTime), Enc])]).

where(Config) ->
    emqx_guard_offsite:where(Config).

%%--------------------------------------------------------------------
%% backup_fetch
%%--------------------------------------------------------------------

%% The steps are printed as they come (`emqx_guard_steps_cli'): the object (found in a listing
%% first, for its size), the download's progress at most once a second, then the result.
fetch(Name, Identity) ->
    with_config(fun(Config) ->
        Dir = emqx_guard_emqx:backup_dir(),
        _ = filelib:ensure_dir(filename:join(Dir, "x")),
        Found = locate(Config, Name),
        print({started, download, Found#{name => Name, destination => where(Config)}}),
        T0 = erlang:monotonic_time(millisecond),
        Tick = fun(Ms) -> print({progress, download, (fetching(Dir))#{elapsed_ms => Ms, total => maps:get(size, Found, undefined)}}) end,
        Fetched =
            case emqx_guard_core:offsite_fetch_async(Config, Name, Identity, Dir, #{}) of
                {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS, Tick);
                {error, _} = Error -> Error
            end,
        case Fetched of
            {ok, #{name := File, path := Path, size := Size, encrypted := Encrypted, verified := V} = Got} ->
                print({done, download, #{duration_ms => emqx_guard_steps:since(T0), size => Size}}),
                line(text("Fetched ~ts from ~ts into ~ts (~ts~ts)", [
                    File, where(Config), Path, emqx_guard_render:size(Size),
                    case Encrypted of
                        true -> <<", decrypted">>;
                        false -> <<>>
                    end
                ])),
                %% the checks the backup passed: an object without checksum metadata has fewer
                line(text("  verified: EMQX ~ts ~ts export, ~B entries, sha256 ~ts (checks: ~ts)", [
                    maps:get(version, V), maps:get(edition, V), maps:get(entries, V), maps:get(sha256, V),
                    lists:join(", ", [atom_to_list(C) || C <- maps:get(checked_by, Got, [])])
                ])),
                line(["Restore it with: emqx ctl data import ", File]);
            {error, {Reason, Detail}} ->
                error_line([fetch_hint(Reason), Detail])
        end
    end).

%% The object a fetch of Name takes (the plain one when both are there, as the core does), from
%% a listing: `#{object, size, encrypted}', or nothing known when it cannot be listed or found
%% (the fetch then says why).
locate(Config, Name) ->
    Listed =
        case emqx_guard_core:offsite_list_async(Config, #{}) of
            {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS);
            {error, _} = Error -> Error
        end,
    Matching =
        case Listed of
            {ok, Remote} -> [R || R = #{name := N, export_name := E} <- Remote, N =:= Name orelse E =:= Name];
            {error, _} -> []
        end,
    case lists:sort(fun(#{encrypted := A}, #{encrypted := B}) -> A =< B end, Matching) of
        [#{name := Object, size := Size, encrypted := Encrypted} | _] -> #{object => Object, size => Size, encrypted => Encrypted};
        [] -> #{}
    end.

%% How far a fetch into Dir got, seen from its work directory (`.emqx_guard_fetch-…', which the
%% core removes when it is done): the object still downloading (`object.download'; an encrypted
%% one is decrypted as it downloads, into `object.decrypting', whose size then tells how far it
%% got), or the download done and the export being checked (both renamed to the export's name).
fetching(Dir) ->
    Work = filelib:wildcard(filename:join(Dir, ".emqx_guard_fetch-*")),
    Files = [F || W <- Work, F <- filelib:wildcard(filename:join(W, "*"))],
    Downloads = [F || F <- Files, lists:member(filename:basename(F), ["object.download", "object.decrypting"])],
    case Downloads of
        [_ | _] -> #{phase => downloading, bytes => lists:sum([max(filelib:file_size(F), 0) || F <- Downloads])};
        [] -> #{phase => checking}
    end.

print(Event) ->
    emqx_guard_steps_cli:print(Event).

fetch_hint(exists) -> "a backup of that name is already in data/backup (nothing overwritten): ";
fetch_hint(decrypt) -> "cannot decrypt (give the identity of the recipient with identity=<file>): ";
fetch_hint(not_found) -> "no such off-site backup (see guard backup_list --remote): ";
fetch_hint(_) -> "".

%%--------------------------------------------------------------------

with_config(Fun) ->
    case emqx_guard_offsite_config:to_nif(emqx_guard_settings:get()) of
        off -> error_reason({no_destination, off});
        {ok, Config} -> Fun(Config)
    end.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
