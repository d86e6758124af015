//! [`saas_action!`]: declares a SaaS connector's action type.

/// Declares an action of a SaaS connector: a unit struct `$ty` implementing
/// [`Action`](kernelize_core::Action) with its name, description, config, input and output
/// types, needing network access to any host (the plugin checks the vendor's hosts).
///
/// Doc attributes before the name document the struct; without them it is documented
/// ``Action `name`.``.
///
/// ```ignore
/// saas_action!(
///     /// `list`: the items, as records.
///     List, "list", "Lists the items as records.", ListConfig, Payload, Records
/// );
/// ```
// A build with none of the connectors that use it leaves it unused.
#[allow(unused_macros)]
macro_rules! saas_action {
    (
        $(#[$attr:meta])+
        $ty:ident, $name:literal, $desc:literal, $config:ty, $input:ty, $output:ty $(,)?
    ) => {
        $(#[$attr])+
        #[derive(Debug)]
        pub struct $ty;

        impl ::kernelize_core::Action for $ty {
            const NAME: &'static str = $name;
            const DESCRIPTION: &'static str = $desc;
            type Config = $config;
            type Input = $input;
            type Output = $output;

            fn permissions() -> Vec<::kernelize_core::Permission> {
                vec![::kernelize_core::Permission::Network { host: "*".into() }]
            }
        }
    };
    ($ty:ident, $name:literal, $desc:literal, $config:ty, $input:ty, $output:ty $(,)?) => {
        $crate::saas::saas_action!(
            #[doc = concat!("Action `", $name, "`.")]
            $ty, $name, $desc, $config, $input, $output
        );
    };
}

#[allow(unused_imports)]
pub(crate) use saas_action;
