%% @doc The plugin's data files under EMQX's data directory: `<data_dir>/emqx_guard/NAME', each
%% holding one Erlang term, and the one rule for their format versions.
%%
%% Reading only parses (`file:consult/1'), never evaluates. Writing goes to a temporary file in
%% the same directory (mode 0600 before any byte is written: the settings hold secrets), synced,
%% then renamed over the file, so a reader sees the old term or the new one, never a part.
%%
%% <b>Format versions.</b> A data file holds `{Tag, Version, Body}'. Its owner declares the
%% file's `format()': the tag, the version it writes, how a body of each older version becomes
%% the body of the next (`upgrades'), and, for a file from before files had versions, which
%% version its bare content is (`unversioned'). `load/2' is the rule, in this one place:
%% <ul>
%% <li>the owner's version: the body as it is;</li>
%% <li>an older version: upgraded step by step to the owner's (a newer plugin reads every older
%%     format);</li>
%% <li>a newer version (a plugin downgraded after a newer one wrote the file): one warning (once
%%     per file and version while the node runs), `emqx_guard_state_file_newer', naming the file
%%     and both versions, and the owner starts from its defaults for that file instead of
%%     misreading it. Before that, the file is copied
%%     to `<file>.newer-v<Version>' (replacing an older copy of that version), so the owner's
%%     next write loses nothing the operator could still want: going back to the newer plugin,
%%     the copy is what to put back. When the copy cannot be made, this node refuses every
%%     write of that file (`write/2' answers an error) until it is read again as a format this
%%     plugin knows.</li>
%% </ul>
%% A format version changes only when an older plugin would misread the file: a new key in a
%% map that older plugins ignore is no new format. What a body must hold, and what to do with a
%% damaged one, stays its owner's business.
-module(emqx_guard_store).

-include_lib("kernel/include/logger.hrl").

-export([dir/0, path/1, read/1, write/2, load/2, save/3]).

-export_type([format/0]).

-type format() :: #{
    tag := atom(),
    version := pos_integer(),
    %% Version => how a body of that version becomes the body of Version + 1
    upgrades => #{pos_integer() => fun((term()) -> term())},
    %% a file written before it had a version holds the bare body of this version
    unversioned => pos_integer()
}.

-export_type([error/0]).

%% Why a file could not be written (`emqx_guard_outcome:format_error/1' says it).
-type error() ::
    {cannot_write, #{path := binary(), posix := term()}}
    | {newer_format_kept, #{path := binary(), version := pos_integer()}}.

%% @doc `<data_dir>/emqx_guard'.
-spec dir() -> file:filename().
dir() ->
    filename:join(emqx_guard_emqx:data_dir(), "emqx_guard").

%% @doc The path of the plugin's file Name.
-spec path(string()) -> file:filename().
path(Name) ->
    filename:join(dir(), Name).

%% @doc Reads the data file at Path written in Format (see the module doc): `{ok, Body}' in the
%% owner's version (an older one upgraded), `none' when there is no file, `newer' when a newer
%% plugin wrote it (said in the log, a copy kept), `{damaged, Why}' when it is none of these.
-spec load(file:filename_all(), format()) -> {ok, term()} | none | newer | {damaged, term()}.
load(Path, Format = #{tag := Tag, version := Current}) ->
    Loaded =
        case read(Path) of
            {ok, {Tag, Current, Body}} ->
                {ok, Body};
            {ok, {Tag, Vsn, _Body}} when is_integer(Vsn), Vsn > Current ->
                newer(Path, Vsn, Current);
            {ok, {Tag, Vsn, Body}} when is_integer(Vsn), Vsn >= 1 ->
                upgrade(Vsn, Body, Format);
            {ok, Bare} when is_map_key(unversioned, Format) ->
                upgrade(maps:get(unversioned, Format), Bare, Format);
            {ok, _} ->
                {damaged, unexpected_content};
            {error, enoent} ->
                none;
            {error, Reason} ->
                {damaged, Reason}
        end,
    case Loaded of
        newer -> ok;
        _ -> _ = persistent_term:erase(newer_key(Path))
    end,
    Loaded.

%% @doc Writes Body to the data file at Path in Format's version, atomically.
-spec save(file:filename_all(), format(), term()) -> ok | {error, error()}.
save(Path, #{tag := Tag, version := Version}, Body) ->
    write(Path, {Tag, Version, Body}).

%% @doc The one term in the file at Path: `{error, enoent}' when there is none,
%% `{error, {expected_one_term, N}}' or a `file:consult/1' error when it is damaged. No version
%% rule: `load/2' is the way to read a data file.
-spec read(file:filename_all()) -> {ok, term()} | {error, term()}.
read(Path) ->
    case file:consult(Path) of
        {ok, [Term]} -> {ok, Term};
        {ok, Terms} -> {error, {expected_one_term, length(Terms)}};
        {error, _} = Error -> Error
    end.

%% @doc Writes Term to Path atomically; `{error, {cannot_write, #{path, posix}}}' says what failed.
%% Refused, `{error, {newer_format_kept, #{path, version}}}', for a file that holds a newer format
%% which could not be kept aside (see the module doc).
-spec write(file:filename_all(), term()) -> ok | {error, error()}.
write(Path, Term) ->
    case persistent_term:get(newer_key(Path), undefined) of
        {Vsn, refused} ->
            {error, {newer_format_kept, #{path => unicode:characters_to_binary(Path), version => Vsn}}};
        _ ->
            write_file(Path, Term)
    end.

write_file(Path, Term) ->
    Tmp = filename:join(filename:dirname(Path), [
        ".", filename:basename(Path), ".tmp.", os:getpid(), ".", integer_to_list(erlang:unique_integer([positive]))
    ]),
    Content = unicode:characters_to_binary(
        io_lib:format("%% -*- coding: utf-8 -*-~n%% Written by emqx_guard; edit with `emqx ctl guard`.~n~tp.~n", [Term])
    ),
    Written =
        case filelib:ensure_dir(Path) of
            ok -> write_synced(Tmp, Content);
            {error, _} = E -> E
        end,
    Result =
        case Written of
            ok -> file:rename(Tmp, Path);
            {error, _} = E2 -> E2
        end,
    case Result of
        ok ->
            ok;
        {error, Reason} ->
            _ = file:delete(Tmp),
            {error, {cannot_write, #{path => unicode:characters_to_binary(Path), posix => Reason}}}
    end.

write_synced(Tmp, Content) ->
    case file:open(Tmp, [write, raw, binary]) of
        {ok, Fd} ->
            _ = file:change_mode(Tmp, 8#600),
            Result =
                case file:write(Fd, Content) of
                    ok -> file:sync(Fd);
                    {error, _} = E -> E
                end,
            _ = file:close(Fd),
            Result;
        {error, _} = E ->
            E
    end.

%%--------------------------------------------------------------------------------------------
%% Versions
%%--------------------------------------------------------------------------------------------

%% Older bodies become the current one through each step in turn; a missing step, or a step
%% that fails on what it is given, makes the file damaged.
upgrade(Current, Body, #{version := Current}) ->
    {ok, Body};
upgrade(Vsn, Body, Format) ->
    case maps:find(Vsn, maps:get(upgrades, Format, #{})) of
        {ok, Step} ->
            try Step(Body) of
                Next -> upgrade(Vsn + 1, Next, Format)
            catch
                _:_ -> {damaged, {not_upgradable, Vsn}}
            end;
        error ->
            {damaged, {unknown_version, Vsn}}
    end.

%% A newer plugin wrote Path: keep a copy before the owner can write over it, and say so, once
%% for each version found (the owner may read the file again before it writes).
newer(Path, Vsn, Current) ->
    Key = newer_key(Path),
    case persistent_term:get(Key, undefined) of
        {Vsn, _} ->
            newer;
        _ ->
            Copy = iolist_to_binary([unicode:characters_to_binary(Path), ".newer-v", integer_to_binary(Vsn)]),
            Kept =
                case file:copy(Path, Copy) of
                    {ok, _} ->
                        _ = file:change_mode(Copy, 8#600),
                        persistent_term:put(Key, {Vsn, kept}),
                        Copy;
                    {error, Posix} ->
                        %% nowhere to keep it: this node writes nothing over it
                        persistent_term:put(Key, {Vsn, refused}),
                        text("not kept (~ts): the file is not written on this node until the plugin is upgraded again", [
                            file:format_error(Posix)
                        ])
                end,
            ?LOG_WARNING(#{
                msg => emqx_guard_state_file_newer,
                file => unicode:characters_to_binary(Path),
                version => Vsn,
                this_plugin_reads => Current,
                kept_as => Kept,
                action => using_defaults
            }),
            newer
    end.

newer_key(Path) ->
    {?MODULE, newer, unicode:characters_to_binary(filename:absname(Path))}.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
