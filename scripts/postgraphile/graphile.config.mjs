// PostGraphile v5 for `scripts/bench reads`: the amber preset over the `public` schema of the
// benchmark database, as shipped (no plugins, no access rules: it connects as the database
// owner). DATABASE_URL and PORT come from the environment; the pool matches anchorfed's
// default `db_max_connections` (16). GraphiQL (Ruru), watch mode and explain are off, as in
// production.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: 16 },
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PORT),
    graphiql: false,
    watch: false,
    websockets: false,
  },
  grafast: { explain: false },
};

export default preset;
